// Random-weight checkpoints of any Mamba-1 or RecurrentGemma (Hugging Face layout) or S4D (S4Model layout) shape, for
// speed work without a download: `rill bench --random mamba1:d_model=768,n_layer=24,vocab=50280`. Weights are bf16 with the scales a
// trained model has (so activations stay finite); they mean nothing.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <fstream>
#include <nlohmann/json.hpp>

#include "content.h"

namespace rill {
namespace convert {

namespace {

struct Rng {
  uint64_t s;
  uint32_t next() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return static_cast<uint32_t>(s >> 16);
  }
  float uniform() { return (next() & 0xFFFFFF) / 16777216.0f; }  // [0, 1)
};

uint16_t bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

struct Spec {
  std::string name;
  std::vector<uint64_t> shape;
  int kind;  // 0 uniform with std a, 1 constant a, 2 log(1 + i % period), 3 dt bias, 4 log dt, 5 pi (i % period)
  float a;
  uint64_t period;
};

}  // namespace

namespace {

using Config = nlohmann::json;

uint64_t value(const std::map<std::string, uint64_t>& kv, const char* key, uint64_t def) {
  auto it = kv.find(key);
  return it == kv.end() ? def : it->second;
}

// A Mamba-1 model in the Hugging Face layout.
Config mamba1_specs(const std::map<std::string, uint64_t>& kv, std::vector<Spec>* specs) {
  for (const auto& p : kv)
    if (p.first != "d_model" && p.first != "n_layer" && p.first != "vocab" && p.first != "d_state" &&
        p.first != "d_conv" && p.first != "expand" && p.first != "seed")
      throw ConvertError("--random mamba1: unknown key '" + p.first +
                         "' (d_model, n_layer, vocab, d_state, d_conv, expand, seed)");
  const uint64_t d = value(kv, "d_model", 768), L = value(kv, "n_layer", 24), V = value(kv, "vocab", 50280);
  const uint64_t N = value(kv, "d_state", 16), K = value(kv, "d_conv", 4), E = value(kv, "expand", 2) * d,
                 R = (d + 15) / 16;
  if (d == 0 || L == 0 || V == 0 || N == 0 || K < 2 || E == 0 || d > 65536 || L > 1024 || V > (1u << 22))
    throw ConvertError("--random mamba1: shape out of range");
  *specs = {{"backbone.embeddings.weight", {V, d}, 0, 0.1f, 0}, {"backbone.norm_f.weight", {d}, 1, 1.f, 0}};
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const float sd = 1.f / std::sqrt(static_cast<float>(d)), se = 1.f / std::sqrt(static_cast<float>(E));
    specs->push_back({p + "norm.weight", {d}, 1, 1.f, 0});
    specs->push_back({p + "mixer.in_proj.weight", {2 * E, d}, 0, sd, 0});
    specs->push_back({p + "mixer.conv1d.weight", {E, 1, K}, 0, 0.5f, 0});
    specs->push_back({p + "mixer.conv1d.bias", {E}, 0, 0.1f, 0});
    specs->push_back({p + "mixer.x_proj.weight", {R + 2 * N, E}, 0, se, 0});
    specs->push_back({p + "mixer.dt_proj.weight", {E, R}, 0, 1.f / std::sqrt(static_cast<float>(R)), 0});
    specs->push_back({p + "mixer.dt_proj.bias", {E}, 3, 0.f, 0});
    specs->push_back({p + "mixer.A_log", {E, N}, 2, 0.f, N});
    specs->push_back({p + "mixer.D", {E}, 1, 1.f, 0});
    specs->push_back({p + "mixer.out_proj.weight", {d, E}, 0, se, 0});
  }
  return Config{{"model_type", "mamba"}, {"vocab_size", V},         {"hidden_size", d},
                {"state_size", N},      {"num_hidden_layers", L}, {"intermediate_size", E},
                {"conv_kernel", K},     {"time_step_rank", R},    {"tie_word_embeddings", true}};
}

// An S4D model in the state-spaces/s4 S4Model layout, with S4DKernel's initialisation.
Config s4d_specs(const std::map<std::string, uint64_t>& kv, std::vector<Spec>* specs) {
  for (const auto& p : kv)
    if (p.first != "d_model" && p.first != "n_layer" && p.first != "d_state" && p.first != "d_input" &&
        p.first != "d_output" && p.first != "seed")
      throw ConvertError("--random s4d: unknown key '" + p.first +
                         "' (d_model, n_layer, d_state, d_input, d_output, seed)");
  const uint64_t H = value(kv, "d_model", 256), L = value(kv, "n_layer", 4), N = value(kv, "d_state", 64);
  const uint64_t din = value(kv, "d_input", 8), dout = value(kv, "d_output", 8), M = N / 2;
  if (H == 0 || L == 0 || M == 0 || din == 0 || dout == 0 || H > 65536 || L > 1024 || N > 8192 || din > 65536 ||
      dout > 65536)
    throw ConvertError("--random s4d: shape out of range");
  const float sh = 1.f / std::sqrt(static_cast<float>(H));
  *specs = {{"encoder.weight", {H, din}, 0, 1.f / std::sqrt(static_cast<float>(din)), 0},
            {"encoder.bias", {H}, 0, 0.1f, 0},
            {"decoder.weight", {dout, H}, 0, sh, 0},
            {"decoder.bias", {dout}, 0, 0.1f, 0}};
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "s4_layers." + std::to_string(i) + ".", n = "norms." + std::to_string(i) + ".";
    specs->push_back({p + "D", {H}, 0, 1.f, 0});
    specs->push_back({p + "kernel.log_dt", {H}, 4, 0.f, 0});
    specs->push_back({p + "kernel.C", {H, M, 2}, 0, 0.7071f, 0});
    specs->push_back({p + "kernel.log_A_real", {H, M}, 1, std::log(0.5f), 0});
    specs->push_back({p + "kernel.A_imag", {H, M}, 5, 0.f, M});
    specs->push_back({p + "output_linear.0.weight", {2 * H, H, 1}, 0, sh, 0});
    specs->push_back({p + "output_linear.0.bias", {2 * H}, 0, 0.1f, 0});
    specs->push_back({n + "weight", {H}, 1, 1.f, 0});
    specs->push_back({n + "bias", {H}, 1, 0.f, 0});
  }
  return Config{{"model_type", "s4d"}, {"d_input", din}, {"d_output", dout}, {"d_model", H},
                {"d_state", N},        {"n_layers", L},  {"prenorm", false},  {"pool", "none"}};
}

// A RecurrentGemma model in the Hugging Face layout; the defaults are recurrentgemma-2b's shape.
Config recurrent_gemma_specs(const std::map<std::string, uint64_t>& kv, std::vector<Spec>* specs) {
  static const char* kKeys[] = {"d_model", "n_layer", "vocab", "lru_width", "d_ffn", "heads", "kv_heads", "window",
                                "conv", "seed"};
  for (const auto& p : kv)
    if (std::find_if(std::begin(kKeys), std::end(kKeys), [&](const char* k) { return p.first == k; }) == std::end(kKeys))
      throw ConvertError("--random recurrent_gemma: unknown key '" + p.first +
                         "' (d_model, n_layer, vocab, lru_width, d_ffn, heads, kv_heads, window, conv, seed)");
  const uint64_t d = value(kv, "d_model", 2560), L = value(kv, "n_layer", 26), V = value(kv, "vocab", 256000);
  const uint64_t W = value(kv, "lru_width", d), F = value(kv, "d_ffn", 3 * d), H = value(kv, "heads", 10);
  const uint64_t KV = value(kv, "kv_heads", 1), win = value(kv, "window", 2048), K = value(kv, "conv", 4);
  if (d == 0 || L == 0 || V == 0 || W == 0 || F == 0 || H == 0 || KV == 0 || K < 2 || win == 0 || d % H || W % H ||
      H % KV || d > 65536 || L > 1024 || V > (1u << 22))
    throw ConvertError("--random recurrent_gemma: shape out of range (heads must divide d_model and lru_width)");
  const uint64_t D = d / H, bw = W / H;
  const float sd = 1.f / std::sqrt(static_cast<float>(d)), sw = 1.f / std::sqrt(static_cast<float>(W)),
              sf = 1.f / std::sqrt(static_cast<float>(F)), sb = 1.f / std::sqrt(static_cast<float>(bw));
  *specs = {{"model.embed_tokens.weight", {V, d}, 0, 0.02f, 0}, {"model.final_norm.weight", {d}, 1, 0.f, 0}};
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", t = p + "temporal_block.", m = p + "mlp_block.";
    specs->push_back({p + "temporal_pre_norm.weight", {d}, 1, 0.f, 0});
    specs->push_back({p + "channel_pre_norm.weight", {d}, 1, 0.f, 0});
    if (i % 3 == 2) {
      specs->push_back({t + "q_proj.weight", {H * D, d}, 0, sd, 0});
      specs->push_back({t + "k_proj.weight", {KV * D, d}, 0, sd, 0});
      specs->push_back({t + "v_proj.weight", {KV * D, d}, 0, sd, 0});
      specs->push_back({t + "o_proj.weight", {d, H * D}, 0, sd, 0});
      specs->push_back({t + "o_proj.bias", {d}, 1, 0.f, 0});
    } else {
      for (const char* n : {"linear_y", "linear_x"}) {
        specs->push_back({t + n + ".weight", {W, d}, 0, sd, 0});
        specs->push_back({t + n + ".bias", {W}, 1, 0.f, 0});
      }
      specs->push_back({t + "linear_out.weight", {d, W}, 0, sw, 0});
      specs->push_back({t + "linear_out.bias", {d}, 1, 0.f, 0});
      specs->push_back({t + "conv_1d.weight", {W, 1, K}, 0, 0.5f, 0});
      specs->push_back({t + "conv_1d.bias", {W}, 1, 0.f, 0});
      for (const char* g : {"input", "recurrent"}) {
        specs->push_back({t + "rg_lru." + g + "_gate_weight", {H, bw, bw}, 0, sb, 0});
        specs->push_back({t + "rg_lru." + g + "_gate_bias", {H, bw}, 1, 0.f, 0});
      }
      specs->push_back({t + "rg_lru.recurrent_param", {W}, 1, -2.f, 0});
    }
    for (const char* n : {"gate_proj", "up_proj"}) {
      specs->push_back({m + n + ".weight", {F, d}, 0, sd, 0});
      specs->push_back({m + n + ".bias", {F}, 1, 0.f, 0});
    }
    specs->push_back({m + "down_proj.weight", {d, F}, 0, sf, 0});
    specs->push_back({m + "down_proj.bias", {d}, 1, 0.f, 0});
  }
  return Config{{"model_type", "recurrent_gemma"}, {"vocab_size", V},        {"hidden_size", d},
                {"num_hidden_layers", L},          {"lru_width", W},         {"intermediate_size", 2 * F},
                {"num_attention_heads", H},        {"num_key_value_heads", KV}, {"head_dim", D},
                {"attention_window_size", win},    {"conv1d_width", K},      {"tie_word_embeddings", true}};
}

}  // namespace

std::string write_random_checkpoint(const std::string& arch, const std::map<std::string, uint64_t>& kv,
                                    const std::string& dir) {
  std::vector<Spec> specs;
  Config config;
  if (arch == "mamba1") config = mamba1_specs(kv, &specs);
  else if (arch == "s4d") config = s4d_specs(kv, &specs);
  else if (arch == "recurrent_gemma") config = recurrent_gemma_specs(kv, &specs);
  else throw ConvertError("--random: architecture '" + arch + "' is not supported here (mamba1, s4d, recurrent_gemma)");
  ::mkdir(dir.c_str(), 0755);
  nlohmann::json header = nlohmann::json::object();
  uint64_t off = 0;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (uint64_t x : s.shape) n *= x;
    header[s.name] = {{"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {off, off + 2 * n}}};
    off += 2 * n;
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::ofstream f(dir + "/model.safetensors", std::ios::binary);
  const uint64_t hl = h.size();
  f.write(reinterpret_cast<const char*>(&hl), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  Rng rng{value(kv, "seed", 1) * 0x9E3779B97F4A7C15ull | 1};
  std::vector<uint16_t> buf;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (uint64_t x : s.shape) n *= x;
    buf.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      float v;
      switch (s.kind) {
        case 0: v = (2.f * rng.uniform() - 1.f) * s.a * 1.7320508f; break;  // uniform with std a
        case 1: v = s.a; break;
        case 2: v = std::log(static_cast<float>(i % s.period + 1)); break;
        case 4: v = std::log(1e-3f) + rng.uniform() * (std::log(0.1f) - std::log(1e-3f)); break;
        case 5: v = 3.14159265f * static_cast<float>(i % s.period); break;
        default: {
          const float dt = std::exp(std::log(1e-3f) + rng.uniform() * (std::log(0.1f) - std::log(1e-3f)));
          v = dt + std::log(-std::expm1(-dt));  // softplus^-1
        }
      }
      buf[i] = bf16(v);
    }
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(2 * n));
  }
  if (!f) throw ConvertError("cannot write a random checkpoint under " + dir);
  std::ofstream(dir + "/config.json") << config.dump();
  return dir;
}

}  // namespace convert
}  // namespace rill
