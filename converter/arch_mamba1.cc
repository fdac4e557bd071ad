// Mamba-1 checkpoints: Hugging Face MambaForCausalLM layout and the original mamba_ssm naming.
// Every tensor name and shape is checked against the config before anything is written.
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "plan.h"

namespace rill {
namespace convert {

using json = nlohmann::json;

namespace {

// Keys rill reads, and keys it understands but does not need (training-time init, runtime hints).
const std::set<std::string> kUsedKeys = {
    "vocab_size", "hidden_size", "d_model", "state_size", "num_hidden_layers", "n_layer", "expand",
    "intermediate_size", "d_inner", "conv_kernel", "time_step_rank", "layer_norm_epsilon", "use_bias",
    "use_conv_bias", "hidden_act", "tie_word_embeddings", "tie_embeddings", "ssm_cfg", "rms_norm",
    "pad_vocab_size_multiple", "model_type", "architectures", "bos_token_id", "eos_token_id"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "pad_token_id", "initializer_range",
    "rescale_prenorm_residual", "time_step_min", "time_step_max", "time_step_floor", "time_step_scale",
    "time_step_init_scheme", "use_cache", "use_mambapy", "residual_in_fp32", "fused_add_norm",
    "use_falcon_mambapy", "mixer_rms_eps"};
const std::set<std::string> kSsmCfgKeys = {"d_state", "d_conv", "expand", "dt_rank", "conv_bias", "bias", "layer",
                                           "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor", "use_fast_path"};

// Reads an unsigned integer field that may be spelled two ways; both spellings must agree.
uint64_t get_uint(const json& cfg, std::initializer_list<const char*> names, uint64_t def, bool required) {
  bool found = false;
  uint64_t v = def;
  std::string first;
  for (const char* n : names) {
    if (!cfg.contains(n) || cfg[n].is_null()) continue;
    if (!cfg[n].is_number_integer() || cfg[n].get<int64_t>() < 0)
      throw ConvertError(std::string("config.json: \"") + n + "\" must be a non-negative integer");
    const uint64_t x = cfg[n].get<uint64_t>();
    if (found && x != v)
      throw ConvertError("config.json: \"" + first + "\" = " + std::to_string(v) + " but \"" + n +
                         "\" = " + std::to_string(x));
    if (!found) first = n;
    found = true;
    v = x;
  }
  if (!found && required) {
    std::string all;
    for (const char* n : names) all += std::string(all.empty() ? "" : " or ") + "\"" + n + "\"";
    throw ConvertError("config.json: missing " + all);
  }
  return v;
}

bool get_bool(const json& cfg, std::initializer_list<const char*> names, bool def) {
  for (const char* n : names) {
    if (!cfg.contains(n) || cfg[n].is_null()) continue;
    if (!cfg[n].is_boolean()) throw ConvertError(std::string("config.json: \"") + n + "\" must be true or false");
    return cfg[n].get<bool>();
  }
  return def;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

}  // namespace

bool mamba1_matches(const ArchInput& in) {
  json cfg = json::parse(in.config_text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return false;
  if (cfg.contains("model_type") && cfg["model_type"].is_string()) return cfg["model_type"] == "mamba";
  // mamba_ssm configs have no model_type: recognise them by their tensors.
  return in.ck.find("backbone.embedding.weight") || in.ck.find("backbone.embeddings.weight");
}

Plan mamba1_plan(const ArchInput& in) {
  json cfg = json::parse(in.config_text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw ConvertError("config.json: not a JSON object");

  // 1. Every config key must be understood.
  std::vector<std::string> unknown;
  for (auto& kv : cfg.items())
    if (!kUsedKeys.count(kv.key()) && !kIgnoredKeys.count(kv.key())) unknown.push_back(kv.key());
  json ssm = cfg.contains("ssm_cfg") && cfg["ssm_cfg"].is_object() ? cfg["ssm_cfg"] : json::object();
  for (auto& kv : ssm.items())
    if (!kSsmCfgKeys.count(kv.key())) unknown.push_back("ssm_cfg." + kv.key());
  if (ssm.contains("layer") && ssm["layer"] != "Mamba1")
    throw ConvertError("config.json: ssm_cfg.layer is " + ssm["layer"].dump() + "; this is not a Mamba-1 model");
  if (!unknown.empty() && !in.allow_unknown_config) {
    std::string list;
    for (auto& u : unknown) list += (list.empty() ? "" : ", ") + u;
    throw ConvertError("config.json: field(s) rill does not understand: " + list +
                       " (check the architecture; --allow-unknown-config converts anyway)");
  }
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "silu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (silu is)");
  if (cfg.contains("rms_norm") && cfg["rms_norm"] != true)
    throw ConvertError("config.json: rms_norm=false (LayerNorm blocks) is not supported");

  // 2. Hyper-parameters (HF names first, mamba_ssm names second).
  const uint64_t d = get_uint(cfg, {"hidden_size", "d_model"}, 0, true);
  const uint64_t L = get_uint(cfg, {"num_hidden_layers", "n_layer"}, 0, true);
  const uint64_t vocab_cfg = get_uint(cfg, {"vocab_size"}, 0, true);
  const uint64_t N = get_uint(cfg, {"state_size"}, get_uint(ssm, {"d_state"}, 16, false), false);
  const uint64_t K = get_uint(cfg, {"conv_kernel"}, get_uint(ssm, {"d_conv"}, 4, false), false);
  const uint64_t expand = get_uint(cfg, {"expand"}, get_uint(ssm, {"expand"}, 2, false), false);
  const uint64_t E = get_uint(cfg, {"intermediate_size", "d_inner"}, expand * d, false);
  uint64_t R = (d + 15) / 16;
  for (const json* src : {&cfg, &ssm}) {
    const char* key = src == &cfg ? "time_step_rank" : "dt_rank";
    if (!src->contains(key) || (*src)[key].is_null()) continue;
    const json& v = (*src)[key];
    if (v.is_string() && v == "auto") continue;
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw ConvertError(std::string("config.json: \"") + key + "\" must be \"auto\" or a positive integer");
    R = v.get<uint64_t>();
  }
  const double eps = cfg.contains("layer_norm_epsilon") && cfg["layer_norm_epsilon"].is_number()
                         ? cfg["layer_norm_epsilon"].get<double>() : 1e-5;
  const bool tie_cfg = get_bool(cfg, {"tie_word_embeddings", "tie_embeddings"}, true);
  if (d == 0 || L == 0 || N == 0 || E == 0 || K < 2 || vocab_cfg == 0)
    throw ConvertError("config.json: hidden_size, num_hidden_layers, state_size, intermediate_size, vocab_size must be "
                       "positive and conv_kernel >= 2");
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: layer_norm_epsilon must be in (0, 1)");
  // The runtime's limits (arch/mamba1.cc): refuse before planning anything.
  struct Lim {
    const char* name;
    uint64_t v, hi;
  } lims[] = {{"hidden_size", d, 1u << 16},       {"num_hidden_layers", L, 1024}, {"state_size", N, 1024},
              {"conv_kernel", K, 64},             {"intermediate_size", E, 1u << 18}, {"time_step_rank", R, 1u << 16},
              {"vocab_size", vocab_cfg, 1u << 22}};
  for (const Lim& l : lims)
    if (l.v > l.hi)
      throw ConvertError(std::string("config.json: ") + l.name + " = " + std::to_string(l.v) + " exceeds rill's limit " +
                         std::to_string(l.hi));

  // 3. Naming scheme.
  const Checkpoint& ck = in.ck;
  std::string emb_name, fmt;
  if (ck.find("backbone.embeddings.weight")) emb_name = "backbone.embeddings.weight", fmt = "hf-mamba";
  else if (ck.find("backbone.embedding.weight")) emb_name = "backbone.embedding.weight", fmt = "mamba_ssm";
  else throw ConvertError("checkpoint: no embedding tensor (backbone.embeddings.weight or backbone.embedding.weight)");
  const SrcTensor* emb = ck.find(emb_name);
  if (emb->shape.size() != 2 || emb->shape[1] != d)
    throw ConvertError("tensor " + emb_name + ": expected [vocab, " + std::to_string(d) + "], got " +
                       shape_str(emb->shape));
  const uint64_t V = emb->shape[0];
  const uint64_t pad = get_uint(cfg, {"pad_vocab_size_multiple"}, 1, false);
  const uint64_t padded = pad ? (vocab_cfg + pad - 1) / pad * pad : vocab_cfg;
  if (V != vocab_cfg && V != padded)
    throw ConvertError("tensor " + emb_name + " has " + std::to_string(V) + " rows, config vocab_size is " +
                       std::to_string(vocab_cfg));

  // 4. The expected tensor set; biases of in/out projections decided by presence.
  const bool in_bias = ck.find("backbone.layers.0.mixer.in_proj.bias") != nullptr;
  const bool out_bias = ck.find("backbone.layers.0.mixer.out_proj.bias") != nullptr;
  const bool conv_bias = ck.find("backbone.layers.0.mixer.conv1d.bias") != nullptr;
  const bool has_head = ck.find("lm_head.weight") != nullptr;
  if (!has_head && !tie_cfg)
    throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");
  const bool tied = !has_head;

  std::vector<std::string> problems;
  std::set<std::string> consumed;
  auto expect = [&](const std::string& name, std::vector<uint64_t> shape) -> const SrcTensor* {
    const SrcTensor* t = ck.find(name);
    consumed.insert(name);
    if (!t) {
      problems.push_back("missing tensor " + name + " " + shape_str(shape));
      return nullptr;
    }
    if (t->shape != shape) {
      problems.push_back("tensor " + name + ": expected " + shape_str(shape) + ", got " + shape_str(t->shape));
      return nullptr;
    }
    return t;
  };

  Plan plan;
  plan.arch = fb::Arch::Mamba1;
  plan.source_format = fmt;
  plan.n_layer = static_cast<uint32_t>(L);
  plan.layer_kind = fb::LayerKind::Mamba1Mixer;
  const fb::DType M = in.matrix_dtype;
  auto copy = [&ck](const SrcTensor* t) { return [&ck, t] { return ck.read_f32(*t); }; };
  auto add = [&](const std::string& name, int layer, fb::DType dt, std::vector<uint64_t> shape, const SrcTensor* t,
                 std::function<std::vector<float>()> f) {
    if (!t) return;
    plan.tensors.push_back(PlanTensor{name, layer, dt, std::move(shape), t->name, std::move(f), 0, 0});
  };

  add("embedding", -1, M, {V, d}, expect(emb_name, {V, d}), copy(emb));
  const SrcTensor* nf = expect("backbone.norm_f.weight", {d});
  add("norm_f", -1, fb::DType::F32, {d}, nf, copy(nf));
  if (!tied) {
    const SrcTensor* h = expect("lm_head.weight", {V, d});
    add("head", -1, M, {V, d}, h, copy(h));
  }
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const int li = static_cast<int>(i);
    const SrcTensor* t;
    t = expect(p + "norm.weight", {d});
    add("norm", li, fb::DType::F32, {d}, t, copy(t));
    t = expect(p + "mixer.in_proj.weight", {2 * E, d});
    add("in_proj", li, M, {2 * E, d}, t, copy(t));
    if (in_bias) {
      t = expect(p + "mixer.in_proj.bias", {2 * E});
      add("in_proj_bias", li, fb::DType::F32, {2 * E}, t, copy(t));
    }
    t = expect(p + "mixer.conv1d.weight", {E, 1, K});
    add("conv_weight", li, fb::DType::F32, {K, E}, t, [&ck, t, E, K] {
      const std::vector<float> w = ck.read_f32(*t);  // [E, 1, K]
      std::vector<float> o(K * E);                   // [K, E]
      for (uint64_t c = 0; c < E; ++c)
        for (uint64_t k = 0; k < K; ++k) o[k * E + c] = w[c * K + k];
      return o;
    });
    if (conv_bias) {
      t = expect(p + "mixer.conv1d.bias", {E});
      add("conv_bias", li, fb::DType::F32, {E}, t, copy(t));
    }
    t = expect(p + "mixer.x_proj.weight", {R + 2 * N, E});
    add("x_proj", li, M, {R + 2 * N, E}, t, copy(t));
    t = expect(p + "mixer.dt_proj.weight", {E, R});
    add("dt_proj", li, M, {E, R}, t, copy(t));
    t = expect(p + "mixer.dt_proj.bias", {E});
    add("dt_bias", li, fb::DType::F32, {E}, t, copy(t));
    t = expect(p + "mixer.A_log", {E, N});
    add("A", li, fb::DType::F32, {N, E}, t, [&ck, t, E, N] {
      const std::vector<float> a = ck.read_f32(*t);  // [E, N]
      std::vector<float> o(N * E);                   // [N, E], A = -exp(A_log)
      for (uint64_t c = 0; c < E; ++c)
        for (uint64_t n = 0; n < N; ++n) o[n * E + c] = static_cast<float>(-std::exp(static_cast<double>(a[c * N + n])));
      return o;
    });
    t = expect(p + "mixer.D", {E});
    add("D", li, fb::DType::F32, {E}, t, copy(t));
    t = expect(p + "mixer.out_proj.weight", {d, E});
    add("out_proj", li, M, {d, E}, t, copy(t));
    if (out_bias) {
      t = expect(p + "mixer.out_proj.bias", {d});
      add("out_proj_bias", li, fb::DType::F32, {d}, t, copy(t));
    }
  }
  for (const auto& kv : ck.tensors())
    if (!consumed.count(kv.first))
      problems.push_back("unexpected tensor " + kv.first + " " + shape_str(kv.second.shape) +
                         (kv.first.rfind("backbone.layers.", 0) == 0 ? " (num_hidden_layers is " + std::to_string(L) + ")" : ""));
  if (!problems.empty()) {
    std::string msg = "checkpoint does not match config.json (" + std::to_string(problems.size()) + " problem" +
                      (problems.size() > 1 ? "s" : "") + "; d_model=" + std::to_string(d) + " d_inner=" +
                      std::to_string(E) + " d_state=" + std::to_string(N) + " dt_rank=" + std::to_string(R) +
                      " conv_kernel=" + std::to_string(K) + "):";
    for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
    if (problems.size() > 20) msg += "\n  ... and " + std::to_string(problems.size() - 20) + " more";
    throw ConvertError(msg);
  }

  for (uint64_t i = 0; i < L; ++i) {
    plan.state.push_back(PlanState{"layers." + std::to_string(i) + ".conv", static_cast<int>(i), {K - 1, E}});
    plan.state.push_back(PlanState{"layers." + std::to_string(i) + ".ssm", static_cast<int>(i), {N, E}});
  }
  plan.params_type = fb::ArchParams::Mamba1Params;
  const float feps = static_cast<float>(eps);
  plan.params = [=](flatbuffers::FlatBufferBuilder& b) {
    return fb::CreateMamba1Params(b, uint32_t(d), uint32_t(L), uint32_t(V), uint32_t(E), uint32_t(N), uint32_t(K),
                                  uint32_t(R), feps, tied, in_bias, out_bias, conv_bias)
        .Union();
  };
  return plan;
}

}  // namespace convert
}  // namespace rill
