// RecurrentGemma (Griffin) checkpoints in the Hugging Face layout (RecurrentGemmaForCausalLM,
// model_type "recurrent_gemma"). Every config field that changes the math is read; the rest are known
// by name or refused. The math is transformers' modeling_recurrent_gemma.py:
//   Gemma RMSNorm x (1 + w)          -> stored as plain weights 1 + w
//   RG-LRU gates x @ W[h] + b[h]     -> W[h] transposed to [out, in], blocks stacked [lru, lru / heads]
//   softplus(recurrent_param)        -> c = 8 softplus(Λ), so a = exp(-c sigmoid(gate))
//   embedding x sqrt(hidden) (bf16)  -> Params.embed_scale
#include <cmath>
#include <cstring>

#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "num_hidden_layers", "vocab_size", "hidden_size", "intermediate_size",
    "num_attention_heads", "num_key_value_heads", "head_dim", "lru_width", "attention_window_size", "conv1d_width",
    "logits_soft_cap", "rms_norm_eps", "hidden_activation", "partial_rotary_factor", "rope_theta", "block_types",
    "attention_bias", "embeddings_scale_by_sqrt_dim", "tie_word_embeddings", "rope_parameters", "rope_scaling",
    "bos_token_id", "eos_token_id", "pad_token_id"};
// Training-time settings and runtime hints that do not change a forward pass.
const std::set<std::string> kIgnoredKeys = {"_name_or_path", "torch_dtype", "dtype", "transformers_version", "use_cache",
                                            "attention_dropout", "w_init_variance_scale",
                                            "final_w_init_variance_scale", "initializer_range"};

// sqrt(d) as transformers holds it: a bf16 tensor (round to nearest even), multiplied in f32.
float bf16_round(double v) {
  float f = static_cast<float>(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

bool recurrent_gemma_matches(const ArchInput& in) {
  json cfg;
  try {
    cfg = parse_config(in.config_text);
  } catch (const ConvertError&) {
    return false;
  }
  return cfg.contains("model_type") && cfg["model_type"] == "recurrent_gemma";
}

Plan recurrent_gemma_plan(const ArchInput& in) {
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);

  // 1. Hyper-parameters, with transformers' defaults (RecurrentGemmaConfig).
  const uint64_t L = cfg_uint(cfg, {"num_hidden_layers"}, 26, false);
  const uint64_t V_cfg = cfg_uint(cfg, {"vocab_size"}, 256000, false);
  const uint64_t d = cfg_uint(cfg, {"hidden_size"}, 2560, false);
  const uint64_t I = cfg_uint(cfg, {"intermediate_size"}, 3 * d, false);
  const uint64_t H = cfg_uint(cfg, {"num_attention_heads"}, 10, false);
  const uint64_t KV = cfg.contains("num_key_value_heads") && !cfg["num_key_value_heads"].is_null()
                          ? cfg_uint(cfg, {"num_key_value_heads"}, 0, true) : H;
  const uint64_t Dh = cfg.contains("head_dim") && !cfg["head_dim"].is_null() ? cfg_uint(cfg, {"head_dim"}, 0, true)
                                                                              : (H ? d / H : 0);
  const uint64_t Wl = cfg.contains("lru_width") && !cfg["lru_width"].is_null() ? cfg_uint(cfg, {"lru_width"}, 0, true) : d;
  const uint64_t window = cfg_uint(cfg, {"attention_window_size"}, 2048, false);
  const uint64_t K = cfg_uint(cfg, {"conv1d_width"}, 4, false);
  const double eps = cfg.contains("rms_norm_eps") ? cfg_number(cfg["rms_norm_eps"], "rms_norm_eps") : 1e-6;
  double cap = 30.0;
  if (cfg.contains("logits_soft_cap")) cap = cfg["logits_soft_cap"].is_null() ? 0.0 : cfg_number(cfg["logits_soft_cap"], "logits_soft_cap");
  double theta = 10000.0, prf = 0.5;
  if (cfg.contains("rope_theta")) theta = cfg_number(cfg["rope_theta"], "rope_theta");
  if (cfg.contains("partial_rotary_factor")) prf = cfg_number(cfg["partial_rotary_factor"], "partial_rotary_factor");
  for (const char* key : {"rope_parameters", "rope_scaling"}) {  // newer transformers nest them
    if (!cfg.contains(key) || cfg[key].is_null()) continue;
    const json& r = cfg[key];
    if (!r.is_object()) throw ConvertError(std::string("config.json: ") + key + " must be an object");
    for (const char* t : {"rope_type", "type"})  // the kind first: it says why the other fields are there
      if (r.contains(t) && r[t] != "default")
        throw ConvertError(std::string("config.json: ") + key + "." + t + " " + r[t].dump() +
                           " is not supported (default RoPE only)");
    for (auto it = r.begin(); it != r.end(); ++it) {
      if (it.key() == "rope_type" || it.key() == "type") {
        continue;
      } else if (it.key() == "rope_theta") {
        theta = cfg_number(it.value(), "rope_parameters.rope_theta");
      } else if (it.key() == "partial_rotary_factor") {
        prf = cfg_number(it.value(), "rope_parameters.partial_rotary_factor");
      } else if (!in.allow_unknown_config) {
        throw ConvertError(std::string("config.json: ") + key + "." + it.key() + " is not known to rill");
      }
    }
  }
  const std::string act = cfg.contains("hidden_activation") && cfg["hidden_activation"].is_string()
                              ? cfg["hidden_activation"].get<std::string>() : "gelu_pytorch_tanh";
  if (act != "gelu_pytorch_tanh" && act != "gelu_tanh")
    throw ConvertError("config.json: hidden_activation \"" + act + "\" is not supported (gelu_pytorch_tanh)");
  const bool attn_bias = cfg_bool(cfg, {"attention_bias"}, false);
  const bool scale_emb = cfg_bool(cfg, {"embeddings_scale_by_sqrt_dim"}, true);
  const bool tie_cfg = cfg_bool(cfg, {"tie_word_embeddings"}, true);
  std::vector<std::string> pattern = {"recurrent", "recurrent", "attention"};
  if (cfg.contains("block_types")) {
    const json& bt = cfg["block_types"];
    if (!bt.is_array() || bt.empty()) throw ConvertError("config.json: block_types must be a non-empty list");
    pattern.clear();
    for (const json& t : bt) {
      if (t != "recurrent" && t != "attention")
        throw ConvertError("config.json: block_types entry " + t.dump() + " is not supported (recurrent, attention)");
      pattern.push_back(t.get<std::string>());
    }
  }

  if (L == 0 || d == 0 || H == 0 || KV == 0 || Dh == 0 || Wl == 0 || window == 0 || K < 2 || V_cfg == 0 || I < 2)
    throw ConvertError("config.json: num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim, "
                       "lru_width, attention_window_size, vocab_size must be positive, conv1d_width >= 2, "
                       "intermediate_size >= 2");
  if (H * Dh != d)
    throw ConvertError("config.json: num_attention_heads " + std::to_string(H) + " x head_dim " + std::to_string(Dh) +
                       " != hidden_size " + std::to_string(d) + " (transformers' attention output needs them equal)");
  if (H % KV != 0) throw ConvertError("config.json: num_attention_heads is not a multiple of num_key_value_heads");
  if (Wl % H != 0) throw ConvertError("config.json: lru_width is not a multiple of num_attention_heads");
  if (I % 2 != 0) throw ConvertError("config.json: intermediate_size must be even (each MLP branch is half of it)");
  // transformers rotates the first of int(1 / factor) chunks of each head, with int(head_dim factor)
  // frequencies' worth of channels: the two agree only when 1 / factor is a whole number dividing head_dim.
  const uint64_t chunks = prf > 0 ? static_cast<uint64_t>(1.0 / prf) : 0;
  const uint64_t R = static_cast<uint64_t>(static_cast<double>(Dh) * prf);
  if (!(prf > 0 && prf <= 1) || chunks == 0 || Dh % chunks != 0 || Dh / chunks != R || R % 2 != 0)
    throw ConvertError("config.json: partial_rotary_factor " + std::to_string(prf) + " with head_dim " +
                       std::to_string(Dh) + " is not supported (1 / factor must divide head_dim into even parts)");
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: rms_norm_eps must be in (0, 1)");
  if (!(theta > 1 && theta < 1e12)) throw ConvertError("config.json: rope_theta must be in (1, 1e12)");
  if (!(cap >= 0 && cap < 1e6)) throw ConvertError("config.json: logits_soft_cap must be in [0, 1e6)");
  struct Lim {
    const char* name;
    uint64_t v, hi;
  } lims[] = {{"hidden_size", d, 1u << 16},        {"num_hidden_layers", L, 1024},  {"lru_width", Wl, 1u << 16},
              {"intermediate_size", I, 1u << 19},  {"num_attention_heads", H, 1024}, {"head_dim", Dh, 512},
              {"attention_window_size", window, 1u << 17}, {"conv1d_width", K, 64}, {"vocab_size", V_cfg, 1u << 22}};
  for (const Lim& l : lims)
    if (l.v > l.hi)
      throw ConvertError(std::string("config.json: ") + l.name + " = " + std::to_string(l.v) + " exceeds rill's limit " +
                         std::to_string(l.hi));
  const uint64_t F = I / 2, bw = Wl / H, KVD = KV * Dh;

  // 2. Tensors.
  const Checkpoint& ck = in.ck;
  const std::string emb_name = "model.embed_tokens.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!emb) throw ConvertError("checkpoint: no " + emb_name);
  if (emb->shape.size() != 2 || emb->shape[1] != d)
    throw ConvertError("tensor " + emb_name + ": expected [vocab, " + std::to_string(d) + "], got " +
                       shape_str(emb->shape));
  const uint64_t V = emb->shape[0];
  if (V != V_cfg)
    throw ConvertError("tensor " + emb_name + " has " + std::to_string(V) + " rows, config vocab_size is " +
                       std::to_string(V_cfg));
  const bool has_head = ck.find("lm_head.weight") != nullptr;
  if (!has_head && !tie_cfg) throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");

  Plan plan;
  plan.arch = fb::Arch::RecurrentGemma;
  plan.source_format = "hf-recurrent-gemma";
  plan.n_layer = static_cast<uint32_t>(L);
  const fb::DType M = in.matrix_dtype, F32 = fb::DType::F32;
  TensorSet ts(ck, &plan);
  bool tied = !has_head;
  if (has_head && tie_cfg && ts.head_is_embedding(emb_name)) tied = true;
  ts.copy(emb_name, "embedding", -1, M, {V, d});
  if (!tied) ts.copy("lm_head.weight", "head", -1, M, {V, d});
  // Gemma's RMSNorm multiplies by (1 + w): stored as the plain weight.
  auto norm = [&](const std::string& src, const std::string& name, int layer) {
    const SrcTensor* t = ts.expect(src, {d});
    ts.add(name, layer, F32, {d}, t, [&ck, t] {
      std::vector<float> w = ck.read_f32(*t);
      for (float& v : w) v = 1.f + v;
      return w;
    });
  };
  norm("model.final_norm.weight", "norm_f", -1);
  // A Linear layer: its weight [rows, cols] as `name` and its bias [rows] as `name`_b.
  auto linear = [&](const std::string& src, const std::string& name, int layer, uint64_t rows, uint64_t cols) {
    ts.copy(src + ".weight", name, layer, M, {rows, cols});
    ts.copy(src + ".bias", name + "_b", layer, F32, {rows});
  };
  int n_attention = 0;
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", tb = p + "temporal_block.", mb = p + "mlp_block.";
    const int li = static_cast<int>(i);
    const bool attention = pattern[i % pattern.size()] == "attention";
    n_attention += attention;
    plan.layer_kinds.push_back(attention ? fb::LayerKind::LocalAttentionBlock : fb::LayerKind::RglruBlock);
    norm(p + "temporal_pre_norm.weight", "norm1", li);
    norm(p + "channel_pre_norm.weight", "norm2", li);
    linear(mb + "gate_proj", "gate", li, F, d);
    linear(mb + "up_proj", "up", li, F, d);
    linear(mb + "down_proj", "down", li, d, F);
    if (attention) {
      ts.copy(tb + "q_proj.weight", "q", li, M, {H * Dh, d});
      ts.copy(tb + "k_proj.weight", "k", li, M, {KVD, d});
      ts.copy(tb + "v_proj.weight", "v", li, M, {KVD, d});
      if (attn_bias) {
        ts.copy(tb + "q_proj.bias", "q_b", li, F32, {H * Dh});
        ts.copy(tb + "k_proj.bias", "k_b", li, F32, {KVD});
        ts.copy(tb + "v_proj.bias", "v_b", li, F32, {KVD});
      }
      linear(tb + "o_proj", "o", li, d, H * Dh);
      plan.state.push_back(PlanState{"layers." + std::to_string(i) + ".k_ring", li, {window, KVD}, in.kv_dtype});
      plan.state.push_back(PlanState{"layers." + std::to_string(i) + ".v_ring", li, {window, KVD}, in.kv_dtype});
    } else {
      linear(tb + "linear_y", "lin_y", li, Wl, d);
      linear(tb + "linear_x", "lin_x", li, Wl, d);
      linear(tb + "linear_out", "lin_out", li, d, Wl);
      ts.conv_weight(tb + "conv_1d.weight", li, Wl, K);
      ts.copy(tb + "conv_1d.bias", "conv_bias", li, F32, {Wl});
      for (const char* g : {"input", "recurrent"}) {
        const std::string name = std::string(g) == "input" ? "gate_x" : "gate_a";
        const SrcTensor* w = ts.expect(tb + "rg_lru." + g + "_gate_weight", {H, bw, bw});
        ts.add(name, li, M, {Wl, bw}, w, [&ck, w, H, bw] {
          const std::vector<float> src = ck.read_f32(*w);  // [H, in, out]: x @ W[h]
          std::vector<float> o(H * bw * bw);               // block h rows [out], columns [in]
          for (uint64_t h = 0; h < H; ++h)
            for (uint64_t a = 0; a < bw; ++a)
              for (uint64_t b = 0; b < bw; ++b) o[(h * bw + b) * bw + a] = src[(h * bw + a) * bw + b];
          return o;
        });
        const SrcTensor* b = ts.expect(tb + "rg_lru." + g + "_gate_bias", {H, bw});
        ts.add(name + "_b", li, F32, {Wl}, b);
      }
      const SrcTensor* lam = ts.expect(tb + "rg_lru.recurrent_param", {Wl});
      ts.add("lru_c", li, F32, {Wl}, lam, [&ck, lam] {
        std::vector<float> v = ck.read_f32(*lam);
        for (float& x : v) {  // 8 softplus(x), PyTorch's threshold 20
          const double t = x;
          x = static_cast<float>(8.0 * (t > 20 ? t : std::log1p(std::exp(t))));
        }
        return v;
      });
      plan.state.push_back(PlanState{"layers." + std::to_string(i) + ".conv", li, {K - 1, Wl}});
      plan.state.push_back(PlanState{"layers." + std::to_string(i) + ".rg_lru", li, {Wl}});
    }
  }
  ts.finish("hidden_size=" + std::to_string(d) + " num_hidden_layers=" + std::to_string(L) + " lru_width=" +
            std::to_string(Wl) + " heads=" + std::to_string(H) + "/" + std::to_string(KV) + "x" + std::to_string(Dh) +
            " intermediate_size=" + std::to_string(I) + " attention layers=" + std::to_string(n_attention));
  plan.state.insert(plan.state.begin(), PlanState{"position", -1, {1}, fb::DType::I64});

  plan.params_type = fb::ArchParams::RecurrentGemmaParams;
  const float feps = static_cast<float>(eps), ftheta = static_cast<float>(theta), fcap = static_cast<float>(cap);
  const float escale = scale_emb ? bf16_round(std::sqrt(static_cast<double>(d))) : 1.f;
  const fb::DType kv = in.kv_dtype;
  plan.params = [=](flatbuffers::FlatBufferBuilder& b) {
    return fb::CreateRecurrentGemmaParams(b, uint32_t(d), uint32_t(L), uint32_t(V), uint32_t(Wl), uint32_t(F),
                                          uint32_t(H), uint32_t(KV), uint32_t(Dh), uint32_t(window), uint32_t(K),
                                          uint32_t(R), ftheta, feps, fcap, escale, tied, attn_bias, kv)
        .Union();
  };
  return plan;
}

}  // namespace convert
}  // namespace rill
