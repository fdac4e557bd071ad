// Gated linear attention in flash-linear-attention's Hugging Face layout (GLAForCausalLM, model_type
// "gla"; docs/architectures.md, GLA). q, k and v become one in_proj; with use_short_conv the three
// convolutions become one. The gated output norm is accepted under both of fla's names:
// g_norm_swish_gate (fuse_norm true) and g_norm (fuse_norm false), the same math with gate_fn swish.
// Every config field that changes the math is read; training-only fields are known by name; anything
// else is refused by name.
#include <cmath>

#include "arch/gla.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "num_heads", "num_kv_heads", "expand_k",
    "expand_v", "feature_map", "use_short_conv", "conv_size", "use_output_gate", "clamp_min", "hidden_act",
    "elementwise_affine", "norm_eps", "gate_logit_normalizer", "gate_low_rank_dim", "intermediate_size",
    "hidden_ratio", "vocab_size", "tie_word_embeddings", "attn", "bos_token_id", "eos_token_id", "fuse_norm"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "attn_mode", "max_position_embeddings", "use_cache",
    "initializer_range", "fuse_swiglu", "fuse_cross_entropy", "fuse_linear_cross_entropy", "use_l2warp",
    "pad_token_id"};

}  // namespace

bool gla_matches(const ArchInput& in) { return model_type_is(in, "gla"); }

FileContent gla_content(const ArchInput& in) {
  const Checkpoint& ck = in.ck;
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  if (!cfg_null(cfg, "clamp_min")) throw ConvertError("config.json: clamp_min is not supported (null is)");
  const FlaModel m = fla_model(ck, cfg, "GLA", 24);
  const FlaHeads hd = fla_heads(cfg, m.d, 4, 0.5, 1.0);
  const uint64_t d = m.d, H = hd.H, K = hd.K, V = hd.V, kd = H * K, vd = H * V;
  const bool conv = cfg_bool(cfg, {"use_short_conv"}, false);
  const uint64_t Kc = conv ? cfg_uint(cfg, {"conv_size"}, 4, false) : 0;
  const double gnorm = cfg.contains("gate_logit_normalizer") ? cfg_number(cfg["gate_logit_normalizer"], "gate_logit_normalizer") : 16;
  if (!(gnorm > 0 && gnorm < 1e6)) throw ConvertError("config.json: gate_logit_normalizer must be in (0, 1e6)");
  const SrcTensor* gk0 = ck.find("model.layers.0.attn.gk_proj.0.weight");
  if (!gk0 || gk0->shape.size() != 2) throw ConvertError("checkpoint: model.layers.0.attn.gk_proj.0.weight missing or not 2-D");
  const uint64_t R = gk0->shape[0];
  if (!cfg_null(cfg, "gate_low_rank_dim") && cfg_uint(cfg, {"gate_low_rank_dim"}, 0, false) != R)
    throw ConvertError("config.json: gate_low_rank_dim = " + std::to_string(cfg_uint(cfg, {"gate_low_rank_dim"}, 0, false)) +
                       " but the tensors say " + std::to_string(R));

  using Spec = spec::Gla;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(m.L, "num_hidden_layers"),
                .vocab = size32(m.vocab, "vocab_size"),
                .n_heads = size32(H, "num_heads"),
                .head_k = size32(K, "key dim / num_heads"),
                .head_v = size32(V, "value dim / num_heads"),
                .rank_gate = size32(R, "gate_low_rank_dim"),
                .d_conv = size32(Kc, "conv_size"),
                .d_ffn = size32(m.F, "intermediate_size"),
                .norm_eps = static_cast<float>(m.eps),
                .gate_normalizer = static_cast<float>(gnorm),
                .tied_head = m.tied,
                .short_conv = conv};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(m.L, fb::LayerKind::GlaBlock), "fla-gla", &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, m.vocab, m.tied, VectorIo{}), in.matrix_dtype);
  ts.lm_tensors("model.embeddings.weight", "model.norm.weight");

  for (uint64_t i = 0; i < m.L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", a = p + "attn.";
    const int li = static_cast<int>(i);
    fla_block_tensors(ts, i, {"g_norm_swish_gate", "g_norm"});
    stack_rows(ts, {{a + "q_proj.weight", kd}, {a + "k_proj.weight", kd}, {a + "v_proj.weight", vd}}, d, "in_proj", li);
    if (conv) stack_convs(ts, {{a + "q_conv1d.weight", kd}, {a + "k_conv1d.weight", kd}, {a + "v_conv1d.weight", vd}}, Kc, li);
    ts.copy(a + "gk_proj.0.weight", "gk1", li);
    ts.copy(a + "gk_proj.1.weight", "gk2", li);
    ts.copy(a + "gk_proj.1.bias", "gk_bias", li);
  }
  ts.finish("hidden_size=" + std::to_string(d) + " layers=" + std::to_string(m.L) + " heads=" + std::to_string(H) +
            " head_k=" + std::to_string(K) + " head_v=" + std::to_string(V) + " gate rank=" + std::to_string(R) +
            (conv ? " conv=" + std::to_string(Kc) : std::string(" no conv")) + " ffn=" + std::to_string(m.F));
  return content;
}

}  // namespace convert
}  // namespace rill
