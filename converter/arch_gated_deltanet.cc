// Gated DeltaNet in flash-linear-attention's Hugging Face layout (GatedDeltaNetForCausalLM, model_type
// "gated_deltanet"; docs/architectures.md, Gated DeltaNet). The q, k, v, a and b projections become one
// in_proj, the three short convolutions one conv over q, k and v, A_log becomes A = -exp(A_log). Every
// config field that changes the math is read; training-only fields are known by name; anything else is
// refused by name.
#include <cmath>

#include "arch/gated_deltanet.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "head_dim", "num_heads", "num_v_heads",
    "expand_v", "conv_size", "use_gate", "use_short_conv", "allow_neg_eigval", "intermediate_size", "hidden_ratio",
    "hidden_act", "norm_eps", "vocab_size", "tie_word_embeddings", "attn", "bos_token_id", "eos_token_id"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "attn_mode", "max_position_embeddings", "use_cache",
    "initializer_range", "fuse_norm", "fuse_swiglu", "fuse_cross_entropy", "fuse_linear_cross_entropy", "use_l2warp",
    "pad_token_id"};

}  // namespace

bool gated_deltanet_matches(const ArchInput& in) { return model_type_is(in, "gated_deltanet"); }

FileContent gated_deltanet_content(const ArchInput& in) {
  const Checkpoint& ck = in.ck;
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  const FlaModel m = fla_model(ck, cfg, "Gated DeltaNet", 21);
  if (!cfg_bool(cfg, {"use_gate"}, true))
    throw ConvertError("config.json: use_gate=false (an output norm without its gate) is not supported");
  if (!cfg_bool(cfg, {"use_short_conv"}, true))
    throw ConvertError("config.json: use_short_conv=false is not supported (the released models use the convolutions)");
  const uint64_t d = m.d, L = m.L;
  const uint64_t K = cfg_uint(cfg, {"head_dim"}, 256, false), H = cfg_uint(cfg, {"num_heads"}, 6, false);
  const uint64_t Hv = !cfg_null(cfg, "num_v_heads") ? cfg_uint(cfg, {"num_v_heads"}, H, false) : H;
  const double expand_v = cfg.contains("expand_v") ? cfg_number(cfg["expand_v"], "expand_v") : 2.0;
  const double vd = static_cast<double>(K) * expand_v;
  if (!(vd >= 1 && vd < 65536) || vd != std::floor(vd))
    throw ConvertError("config.json: head_dim * expand_v = " + std::to_string(vd) + " is not a whole number of values");
  const uint64_t V = static_cast<uint64_t>(vd), Kc = cfg_uint(cfg, {"conv_size"}, 4, false);
  if (H == 0 || Hv % H != 0)
    throw ConvertError("config.json: num_v_heads " + std::to_string(Hv) + " is not a multiple of num_heads " + std::to_string(H));
  const bool neg = cfg_bool(cfg, {"allow_neg_eigval"}, false);

  using Spec = spec::GatedDeltaNet;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(L, "num_hidden_layers"),
                .vocab = size32(m.vocab, "vocab_size"),
                .n_heads = size32(H, "num_heads"),
                .n_v_heads = size32(Hv, "num_v_heads"),
                .head_k = size32(K, "head_dim"),
                .head_v = size32(V, "head_dim * expand_v"),
                .d_conv = size32(Kc, "conv_size"),
                .d_ffn = size32(m.F, "intermediate_size"),
                .norm_eps = static_cast<float>(m.eps),
                .tied_head = m.tied,
                .neg_eigval = neg};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::GatedDeltaNetBlock), "fla-gated_deltanet",
                      &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, m.vocab, m.tied, VectorIo{}), in.matrix_dtype);
  ts.lm_tensors("model.embeddings.weight", "model.norm.weight");

  const uint64_t kd = H * K, vdim = Hv * V;
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", a = p + "attn.";
    const int li = static_cast<int>(i);
    fla_block_tensors(ts, i, {"o_norm"});
    stack_rows(ts, {{a + "q_proj.weight", kd}, {a + "k_proj.weight", kd}, {a + "v_proj.weight", vdim},
                    {a + "a_proj.weight", Hv}, {a + "b_proj.weight", Hv}}, d, "in_proj", li);
    stack_convs(ts, {{a + "q_conv1d.weight", kd}, {a + "k_conv1d.weight", kd}, {a + "v_conv1d.weight", vdim}}, Kc, li);
    ts.copy(a + "dt_bias", "dt_bias", li);
    if (const SrcTensor* al = ts.expect(a + "A_log", {Hv}))
      ts.add("A", li, al, [&ck, al] {
        std::vector<float> v = ck.read_f32(*al);
        for (float& x : v) x = static_cast<float>(-std::exp(static_cast<double>(x)));  // A = -exp(A_log)
        return v;
      });
  }
  ts.finish("hidden_size=" + std::to_string(d) + " layers=" + std::to_string(L) + " heads=" + std::to_string(H) +
            " v_heads=" + std::to_string(Hv) + " head_k=" + std::to_string(K) + " head_v=" + std::to_string(V) +
            " conv=" + std::to_string(Kc) + " ffn=" + std::to_string(m.F));
  return content;
}

}  // namespace convert
}  // namespace rill
