// RetNet (multi-scale retention) in flash-linear-attention's Hugging Face layout (RetNetForCausalLM,
// model_type "retnet"; docs/architectures.md, RetNet). q, k and v become one in_proj; with
// use_short_conv the three convolutions become one; the heads' fixed decays, fla's 1 − 2^(−5−h), are
// written as the model tensor gamma. Both names of the gated output norm are read (g_norm_swish_gate,
// g_norm). Every config field that changes the math is read; training-only fields are known by name;
// anything else is refused by name.
#include <cmath>

#include "arch/retnet.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "num_heads", "num_kv_heads", "expand_k",
    "expand_v", "feature_map", "use_short_conv", "conv_size", "use_output_gate", "hidden_act", "elementwise_affine",
    "norm_eps", "intermediate_size", "hidden_ratio", "vocab_size", "tie_word_embeddings", "attn", "bos_token_id",
    "eos_token_id", "fuse_norm"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "attn_mode", "max_position_embeddings", "use_cache",
    "initializer_range", "fuse_swiglu", "fuse_cross_entropy", "fuse_linear_cross_entropy", "use_l2warp",
    "pad_token_id"};

bool is_null(const json& cfg, const char* key) { return !cfg.contains(key) || cfg[key].is_null(); }

}  // namespace

bool retnet_matches(const ArchInput& in) {
  try {
    const json cfg = parse_config(in.config_text);
    return cfg.contains("model_type") && cfg["model_type"] == "retnet";
  } catch (const ConvertError&) {
    return false;
  }
}

FileContent retnet_content(const ArchInput& in) {
  const Checkpoint& ck = in.ck;
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  if (!is_null(cfg, "attn")) throw ConvertError("config.json: \"attn\" is set (a RetNet/attention hybrid); rill runs pure RetNet");
  if (!is_null(cfg, "feature_map"))
    throw ConvertError("config.json: feature_map " + cfg["feature_map"].dump() + " is not supported (null is)");
  if (!cfg_bool(cfg, {"use_output_gate"}, true)) throw ConvertError("config.json: use_output_gate=false is not supported");
  if (!cfg_bool(cfg, {"elementwise_affine"}, true))
    throw ConvertError("config.json: elementwise_affine=false is not supported");
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "swish" && cfg["hidden_act"] != "silu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (swish is)");

  const uint64_t d = cfg_uint(cfg, {"hidden_size"}, 2048, false), L = cfg_uint(cfg, {"num_hidden_layers"}, 24, false);
  const uint64_t H = cfg_uint(cfg, {"num_heads"}, 8, false);
  if (!is_null(cfg, "num_kv_heads") && cfg_uint(cfg, {"num_kv_heads"}, H, false) != H)
    throw ConvertError("config.json: num_kv_heads different from num_heads (shared keys and values) is not supported");
  const double ek = cfg.contains("expand_k") ? cfg_number(cfg["expand_k"], "expand_k") : 1.0;
  const double ev = cfg.contains("expand_v") ? cfg_number(cfg["expand_v"], "expand_v") : 2.0;
  const double kd_f = std::round(static_cast<double>(d) * ek), vd_f = std::round(static_cast<double>(d) * ev);
  if (!(kd_f >= 1 && vd_f >= 1 && kd_f < 1e7 && vd_f < 1e7))
    throw ConvertError("config.json: hidden_size * expand_k or * expand_v out of range");
  const uint64_t kd = static_cast<uint64_t>(kd_f), vd = static_cast<uint64_t>(vd_f);
  if (H == 0 || kd % H != 0 || vd % H != 0)
    throw ConvertError("config.json: key dim " + std::to_string(kd) + " or value dim " + std::to_string(vd) +
                       " is not a multiple of num_heads " + std::to_string(H));
  const uint64_t K = kd / H, V = vd / H;
  const bool conv = cfg_bool(cfg, {"use_short_conv"}, false);
  const uint64_t Kc = conv ? cfg_uint(cfg, {"conv_size"}, 4, false) : 0;
  const double eps = cfg.contains("norm_eps") ? cfg_number(cfg["norm_eps"], "norm_eps") : 1e-6;
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: norm_eps must be in (0, 1)");

  const std::string emb_name = "model.embeddings.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!emb || emb->shape.size() != 2 || emb->shape[1] != d)
    throw ConvertError("checkpoint: " + emb_name + " missing or not [vocab, hidden_size]");
  const uint64_t Vocab = emb->shape[0];
  const SrcTensor* g0 = ck.find("model.layers.0.mlp.gate_proj.weight");
  if (!g0 || g0->shape.size() != 2) throw ConvertError("checkpoint: model.layers.0.mlp.gate_proj.weight missing or not 2-D");
  const uint64_t F = g0->shape[0];
  if (!is_null(cfg, "intermediate_size") && cfg_uint(cfg, {"intermediate_size"}, 0, false) != F)
    throw ConvertError("config.json: intermediate_size = " + std::to_string(cfg_uint(cfg, {"intermediate_size"}, 0, false)) +
                       " but the tensors say " + std::to_string(F));
  if (cfg.contains("vocab_size") && cfg_uint(cfg, {"vocab_size"}, 0, false) > Vocab)
    throw ConvertError("config.json: vocab_size exceeds the " + std::to_string(Vocab) + " embedding rows");
  const bool has_head = ck.find("lm_head.weight") != nullptr;
  const bool tie = cfg_bool(cfg, {"tie_word_embeddings"}, false);
  if (!has_head && !tie) throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");
  const bool tied = !has_head || (tie && head_is_embedding(ck, emb_name));

  using Spec = spec::RetNet;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(L, "num_hidden_layers"),
                .vocab = size32(Vocab, "vocab_size"),
                .n_heads = size32(H, "num_heads"),
                .head_k = size32(K, "key dim / num_heads"),
                .head_v = size32(V, "value dim / num_heads"),
                .d_conv = size32(Kc, "conv_size"),
                .d_ffn = size32(F, "intermediate_size"),
                .norm_eps = static_cast<float>(eps),
                .rope_theta = 10000.f,  // fla's RotaryEmbedding default, which MultiScaleRetention keeps
                .tied_head = tied,
                .short_conv = conv};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::RetNetBlock), "fla-retnet", &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, Vocab, tied, VectorIo{}), in.matrix_dtype);
  ts.lm_tensors(emb_name, "model.norm.weight");
  std::vector<float> gamma(H);
  for (uint64_t i = 0; i < H; ++i) gamma[i] = static_cast<float>(1.0 - std::pow(2.0, -5.0 - static_cast<double>(i)));
  ts.add_computed("gamma", -1, "fla's fixed decays 1 - 2^(-5-h)", gamma);

  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", a = p + "attn.";
    const int li = static_cast<int>(i);
    ts.copy(p + "attn_norm.weight", "attn_norm", li);
    stack_rows(ts, {{a + "q_proj.weight", kd}, {a + "k_proj.weight", kd}, {a + "v_proj.weight", vd}}, d, "in_proj", li);
    if (conv) stack_convs(ts, {{a + "q_conv1d.weight", kd}, {a + "k_conv1d.weight", kd}, {a + "v_conv1d.weight", vd}}, Kc, li);
    ts.copy(a + "g_proj.weight", "g_proj", li);
    const bool fused = ck.find(a + "g_norm_swish_gate.weight") != nullptr;
    ts.copy(a + (fused ? "g_norm_swish_gate.weight" : "g_norm.weight"), "o_norm", li);
    ts.copy(a + "o_proj.weight", "out_proj", li);
    ts.copy(p + "mlp_norm.weight", "mlp_norm", li);
    ts.copy(p + "mlp.gate_proj.weight", "gate", li);
    ts.copy(p + "mlp.up_proj.weight", "up", li);
    ts.copy(p + "mlp.down_proj.weight", "down", li);
  }
  ts.finish("hidden_size=" + std::to_string(d) + " layers=" + std::to_string(L) + " heads=" + std::to_string(H) +
            " head_k=" + std::to_string(K) + " head_v=" + std::to_string(V) +
            (conv ? " conv=" + std::to_string(Kc) : std::string(" no conv")) + " ffn=" + std::to_string(F));
  return content;
}

}  // namespace convert
}  // namespace rill
