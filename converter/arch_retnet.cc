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

}  // namespace

bool retnet_matches(const ArchInput& in) { return model_type_is(in, "retnet"); }

FileContent retnet_content(const ArchInput& in) {
  const Checkpoint& ck = in.ck;
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  const FlaModel m = fla_model(ck, cfg, "RetNet", 24);
  const FlaHeads hd = fla_heads(cfg, m.d, 8, 1.0, 2.0);
  const uint64_t d = m.d, H = hd.H, K = hd.K, V = hd.V, kd = H * K, vd = H * V;
  const bool conv = cfg_bool(cfg, {"use_short_conv"}, false);
  const uint64_t Kc = conv ? cfg_uint(cfg, {"conv_size"}, 4, false) : 0;

  using Spec = spec::RetNet;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(m.L, "num_hidden_layers"),
                .vocab = size32(m.vocab, "vocab_size"),
                .n_heads = size32(H, "num_heads"),
                .head_k = size32(K, "key dim / num_heads"),
                .head_v = size32(V, "value dim / num_heads"),
                .d_conv = size32(Kc, "conv_size"),
                .d_ffn = size32(m.F, "intermediate_size"),
                .norm_eps = static_cast<float>(m.eps),
                .rope_theta = 10000.f,  // fla's RotaryEmbedding default, which MultiScaleRetention keeps
                .tied_head = m.tied,
                .short_conv = conv};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(m.L, fb::LayerKind::RetNetBlock), "fla-retnet", &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, m.vocab, m.tied, VectorIo{}), in.matrix_dtype);
  ts.lm_tensors("model.embeddings.weight", "model.norm.weight");
  std::vector<float> gamma(H);
  for (uint64_t i = 0; i < H; ++i) gamma[i] = static_cast<float>(1.0 - std::pow(2.0, -5.0 - static_cast<double>(i)));
  ts.add_computed("gamma", -1, "fla's fixed decays 1 - 2^(-5-h)", gamma);

  for (uint64_t i = 0; i < m.L; ++i) {
    const std::string a = "model.layers." + std::to_string(i) + ".attn.";
    const int li = static_cast<int>(i);
    fla_block_tensors(ts, i, {"g_norm_swish_gate", "g_norm"});
    stack_rows(ts, {{a + "q_proj.weight", kd}, {a + "k_proj.weight", kd}, {a + "v_proj.weight", vd}}, d, "in_proj", li);
    if (conv) stack_convs(ts, {{a + "q_conv1d.weight", kd}, {a + "k_conv1d.weight", kd}, {a + "v_conv1d.weight", vd}}, Kc, li);
  }
  ts.finish("hidden_size=" + std::to_string(d) + " layers=" + std::to_string(m.L) + " heads=" + std::to_string(H) +
            " head_k=" + std::to_string(K) + " head_v=" + std::to_string(V) +
            (conv ? " conv=" + std::to_string(Kc) : std::string(" no conv")) + " ffn=" + std::to_string(m.F));
  return content;
}

}  // namespace convert
}  // namespace rill
