// Mamba-1 checkpoints: Hugging Face MambaForCausalLM layout and the original mamba_ssm naming.
// Every tensor name and shape is checked against the config before anything is written.
#include <cmath>

#include "arch/mamba1.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

// Keys rill reads, and keys it understands but does not need (training-time init, runtime hints).
const std::set<std::string> kUsedKeys = {
    "vocab_size", "hidden_size", "d_model", "state_size", "num_hidden_layers", "n_layer", "expand",
    "intermediate_size", "d_inner", "conv_kernel", "time_step_rank", "layer_norm_epsilon", "use_bias",
    "use_conv_bias", "hidden_act", "tie_word_embeddings", "tie_embeddings", "ssm_cfg", "rms_norm",
    "pad_vocab_size_multiple", "model_type", "architectures", "bos_token_id", "eos_token_id", "d_input", "d_output",
    "input_mean", "input_std"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "pad_token_id", "initializer_range",
    "rescale_prenorm_residual", "time_step_min", "time_step_max", "time_step_floor", "time_step_scale",
    "time_step_init_scheme", "use_cache", "use_mambapy", "residual_in_fp32", "fused_add_norm",
    "use_falcon_mambapy", "mixer_rms_eps"};
const std::set<std::string> kSsmCfgKeys = {"d_state", "d_conv", "expand", "dt_rank", "conv_bias", "bias", "layer",
                                           "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor", "use_fast_path"};

}  // namespace

bool mamba1_matches(const ArchInput& in) {
  json cfg;
  try {
    cfg = parse_config(in.config_text);
  } catch (const ConvertError&) {
    return false;
  }
  if (cfg.contains("model_type") && cfg["model_type"].is_string()) return cfg["model_type"] == "mamba";
  // mamba_ssm configs have no model_type: recognise them by their tensors.
  return in.ck.find("backbone.embedding.weight") || in.ck.find("backbone.embeddings.weight");
}

FileContent mamba1_content(const ArchInput& in) {
  const json cfg = parse_config(in.config_text);

  // 1. Every config key must be understood.
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  const json ssm = cfg.contains("ssm_cfg") && cfg["ssm_cfg"].is_object() ? cfg["ssm_cfg"] : json::object();
  check_keys(ssm, kSsmCfgKeys, {}, "ssm_cfg.", &unknown);
  if (ssm.contains("layer") && ssm["layer"] != "Mamba1")
    throw ConvertError("config.json: ssm_cfg.layer is " + ssm["layer"].dump() + "; this is not a Mamba-1 model");
  fail_unknown(unknown, in.allow_unknown_config);
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "silu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (silu is)");
  if (cfg.contains("rms_norm") && cfg["rms_norm"] != true)
    throw ConvertError("config.json: rms_norm=false (LayerNorm blocks) is not supported");

  // 2. Hyper-parameters (HF names first, mamba_ssm names second).
  const uint64_t d = cfg_uint(cfg, {"hidden_size", "d_model"}, 0, true);
  const uint64_t L = cfg_uint(cfg, {"num_hidden_layers", "n_layer"}, 0, true);
  const VectorIo io = read_vector_io(cfg);  // a sensor model: encoder and decoder instead of embedding and head
  const uint64_t vocab_cfg = io.d_input ? 0 : cfg_uint(cfg, {"vocab_size"}, 0, true);
  const uint64_t N = cfg_uint(cfg, {"state_size"}, cfg_uint(ssm, {"d_state"}, 16, false), false);
  const uint64_t K = cfg_uint(cfg, {"conv_kernel"}, cfg_uint(ssm, {"d_conv"}, 4, false), false);
  const uint64_t expand = cfg_uint(cfg, {"expand"}, cfg_uint(ssm, {"expand"}, 2, false), false);
  const uint64_t E = cfg_uint(cfg, {"intermediate_size", "d_inner"}, expand * d, false);
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
  const double eps = cfg.contains("layer_norm_epsilon") ? cfg_number(cfg["layer_norm_epsilon"], "layer_norm_epsilon") : 1e-5;
  const bool tie_cfg = cfg_bool(cfg, {"tie_word_embeddings", "tie_embeddings"}, true);
  if (d == 0 || L == 0 || N == 0 || E == 0 || K < 2 || (vocab_cfg == 0 && !io.d_input))
    throw ConvertError("config.json: hidden_size, num_hidden_layers, state_size, intermediate_size, vocab_size must be "
                       "positive and conv_kernel >= 2");
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: layer_norm_epsilon must be in (0, 1)");
  for (const uint64_t v : {d, L, N, K, E, R}) size32(v, "a size in config.json");  // products fit 64 bits

  // 3. Naming scheme.
  const Checkpoint& ck = in.ck;
  std::string emb_name, fmt;
  if (io.d_input) emb_name = "encoder.weight", fmt = "rill-mamba-vector";
  else if (ck.find("backbone.embeddings.weight")) emb_name = "backbone.embeddings.weight", fmt = "hf-mamba";
  else if (ck.find("backbone.embedding.weight")) emb_name = "backbone.embedding.weight", fmt = "mamba_ssm";
  else throw ConvertError("checkpoint: no embedding tensor (backbone.embeddings.weight or backbone.embedding.weight)");
  const SrcTensor* emb = ck.find(emb_name);
  if (!io.d_input && (emb->shape.size() != 2 || emb->shape[1] != d))
    throw ConvertError("tensor " + emb_name + ": expected [vocab, " + std::to_string(d) + "], got " +
                       shape_str(emb->shape));
  const uint64_t V = io.d_input ? 0 : emb->shape[0];
  const uint64_t pad = cfg_uint(cfg, {"pad_vocab_size_multiple"}, 1, false);
  const uint64_t padded = pad ? (vocab_cfg + pad - 1) / pad * pad : vocab_cfg;
  if (V != vocab_cfg && V != padded)
    throw ConvertError("tensor " + emb_name + " has " + std::to_string(V) + " rows, config vocab_size is " +
                       std::to_string(vocab_cfg));

  // 4. The expected tensor set; biases of in/out projections decided by presence.
  const bool in_bias = ck.find("backbone.layers.0.mixer.in_proj.bias") != nullptr;
  const bool out_bias = ck.find("backbone.layers.0.mixer.out_proj.bias") != nullptr;
  const bool conv_bias = ck.find("backbone.layers.0.mixer.conv1d.bias") != nullptr;
  const bool has_head = ck.find("lm_head.weight") != nullptr || io.d_input;
  if (!has_head && !tie_cfg)
    throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");
  bool tied = !has_head;

  if (has_head && tie_cfg && head_is_embedding(ck, emb_name)) tied = true;
  using Spec = spec::Mamba1;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(L, "num_hidden_layers"),
                .vocab = size32(V, "vocab_size"),
                .d_inner = size32(E, "intermediate_size"),
                .d_state = size32(N, "state_size"),
                .d_conv = size32(K, "conv_kernel"),
                .dt_rank = size32(R, "time_step_rank"),
                .norm_eps = static_cast<float>(eps),
                .tied_head = tied,
                .in_proj_bias = in_bias,
                .out_proj_bias = out_bias,
                .conv_bias = conv_bias};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::Mamba1Mixer), fmt, &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, V, tied, io), in.matrix_dtype);
  if (io.d_input) {
    ts.vector_io(io);
    ts.copy("backbone.norm_f.weight", "norm_f", -1);
  } else {
    ts.lm_tensors(emb_name);
  }
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".", m = p + "mixer.";
    const int li = static_cast<int>(i);
    ts.copy(p + "norm.weight", "norm", li);
    ts.copy(m + "in_proj.weight", "in_proj", li);
    if (in_bias) ts.copy(m + "in_proj.bias", "in_proj_bias", li);
    ts.conv_weight(m + "conv1d.weight", li);
    if (conv_bias) ts.copy(m + "conv1d.bias", "conv_bias", li);
    ts.copy(m + "x_proj.weight", "x_proj", li);
    ts.copy(m + "dt_proj.weight", "dt_proj", li);
    ts.copy(m + "dt_proj.bias", "dt_bias", li);
    const SrcTensor* al = ts.expect(m + "A_log", {E, N});
    ts.add("A", li, al, [&ck, al, E, N] {
      const std::vector<float> a = ck.read_f32(*al);  // [E, N]
      std::vector<float> o(N * E);                    // [N, E], A = -exp(A_log)
      for (uint64_t c = 0; c < E; ++c)
        for (uint64_t n = 0; n < N; ++n) o[n * E + c] = static_cast<float>(-std::exp(static_cast<double>(a[c * N + n])));
      return o;
    });
    ts.copy(m + "D", "D", li);
    ts.copy(m + "out_proj.weight", "out_proj", li);
    if (out_bias) ts.copy(m + "out_proj.bias", "out_proj_bias", li);
  }
  ts.finish("d_model=" + std::to_string(d) + " num_hidden_layers=" + std::to_string(L) + " d_inner=" +
            std::to_string(E) + " d_state=" + std::to_string(N) + " dt_rank=" + std::to_string(R) +
            " conv_kernel=" + std::to_string(K));
  return content;
}

}  // namespace convert
}  // namespace rill
