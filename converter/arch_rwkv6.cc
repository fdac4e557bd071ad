// RWKV-6 "Finch" checkpoints (docs/architectures.md, RWKV-6): the Hugging Face layout
// (`RWKV/v6-Finch-*-HF`, model_type "rwkv6", Rwkv6ForCausalLM) and BlinkDL's original naming stored as
// safetensors (no config.json needed: every size comes from tensor shapes). Head size, LoRA ranks and
// FFN width are read from shapes, never from a formula. The embedding LayerNorm (ln0 / pre_ln) is folded
// into the embedding rows here, so the runtime does not apply it.
#include "arch/rwkv6.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "attention_hidden_size", "head_size",
    "head_size_divisor", "intermediate_size", "layer_norm_epsilon", "vocab_size", "tie_word_embeddings",
    "bos_token_id", "eos_token_id"};
// rescale_every: the HF model halves its hidden state every few layers at inference (an f16 guard that
// LayerNorm undoes); rill computes the authors' unscaled form.
const std::set<std::string> kIgnoredKeys = {"_name_or_path", "torch_dtype", "transformers_version", "rescale_every",
                                            "use_cache", "auto_map", "context_length", "pad_token_id"};

// Checkpoint names in each layout, from BlinkDL's: `att.` / `ffn.` parts become HF's `attention.` /
// `feed_forward.` under `rwkv.blocks.`.
struct Names {
  bool hf;
  std::string layer(uint64_t i, const std::string& blink) const {
    if (!hf) return "blocks." + std::to_string(i) + "." + blink;
    std::string part = blink;
    if (part.rfind("att.", 0) == 0) part = "attention." + part.substr(4);
    else if (part.rfind("ffn.", 0) == 0) part = "feed_forward." + part.substr(4);
    else if (part.rfind("ln0.", 0) == 0) part = "pre_ln." + part.substr(4);
    return "rwkv.blocks." + std::to_string(i) + "." + part;
  }
  std::string top(const std::string& blink) const { return hf ? "rwkv." + blink : blink; }
};

}  // namespace

bool rwkv6_matches(const ArchInput& in) {
  return (in.ck.find("emb.weight") && in.ck.find("blocks.0.att.time_faaaa")) || model_type_is(in, "rwkv6");
}

FileContent rwkv6_content(const ArchInput& in) {
  const Checkpoint& ck = in.ck;
  const Names nm{ck.find("emb.weight") == nullptr};
  if (nm.hf && !ck.find("rwkv.embeddings.weight") && ck.find("model.embeddings.weight"))
    throw ConvertError("checkpoint: flash-linear-attention's RWKV6 layout (model.layers.*.attn) is not supported; rill "
                       "reads the HF Rwkv6ForCausalLM layout (RWKV/v6-Finch-*-HF) and BlinkDL's naming");
  const json cfg = parse_config(in.config_text.empty() ? "{}" : in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  if (cfg_bool(cfg, {"tie_word_embeddings"}, false))
    throw ConvertError("config.json: tie_word_embeddings=true is not supported (RWKV-6 has its own head)");

  // Sizes from shapes.
  const std::string emb_name = nm.hf ? "rwkv.embeddings.weight" : "emb.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!emb || emb->shape.size() != 2) throw ConvertError("checkpoint: " + emb_name + " missing or not 2-D");
  const uint64_t V = emb->shape[0], C = emb->shape[1];
  uint64_t L = 0;
  while (ck.find(nm.layer(L, "ln1.weight"))) ++L;
  const SrcTensor* u = ck.find(nm.layer(0, "att.time_faaaa"));
  if (L == 0 || !u || u->shape.size() != 2)
    throw ConvertError("checkpoint: no RWKV-6 blocks found (expected " + nm.layer(0, "att.time_faaaa") + " [H, N])");
  const uint64_t H = u->shape[0], N = u->shape[1];
  auto dim_of = [&](const std::string& name, size_t ndim, size_t dim) -> uint64_t {
    const SrcTensor* t = ck.find(name);
    if (!t || t->shape.size() != ndim)
      throw ConvertError("checkpoint: " + name + " missing or not " + std::to_string(ndim) + "-D");
    return t->shape[dim];
  };
  const uint64_t mix5 = dim_of(nm.layer(0, "att.time_maa_w1"), 2, 1);  // [C, 5 Dm]
  if (mix5 % 5 != 0) throw ConvertError("checkpoint: time_maa_w1 has " + std::to_string(mix5) + " columns, not 5 * rank");
  const uint64_t Dm = mix5 / 5, Dd = dim_of(nm.layer(0, "att.time_decay_w1"), 2, 1);
  const uint64_t F = dim_of(nm.layer(0, "ffn.key.weight"), 2, 0);
  const double eps = cfg.contains("layer_norm_epsilon") ? cfg_number(cfg["layer_norm_epsilon"], "layer_norm_epsilon") : 1e-5;
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: layer_norm_epsilon must be in (0, 1)");
  // GroupNorm eps of the attention output: HF's Rwkv6SelfAttention uses 1e-5 head_size_divisor^2; the
  // authors' code a fixed 64e-5 (the same at the default divisor, 8).
  const double divisor = cfg.contains("head_size_divisor") ? cfg_number(cfg["head_size_divisor"], "head_size_divisor") : 8;
  if (!(divisor > 0 && divisor < 300)) throw ConvertError("config.json: head_size_divisor must be in (0, 300)");

  struct Agree {
    const char* key;
    uint64_t shape_value;
  } agree[] = {{"hidden_size", C}, {"num_hidden_layers", L}, {"head_size", N}, {"intermediate_size", F},
               {"attention_hidden_size", C}};
  for (const Agree& a : agree) {
    if (!cfg.contains(a.key) || cfg[a.key].is_null()) continue;
    const uint64_t v = cfg_uint(cfg, {a.key}, 0, false);
    if (v != a.shape_value)
      throw ConvertError(std::string("config.json: ") + a.key + " = " + std::to_string(v) + " but the tensors say " +
                         std::to_string(a.shape_value) +
                         (std::string(a.key) == "attention_hidden_size" ? " (rill runs attention_hidden_size = hidden_size)" : ""));
  }
  if (cfg.contains("vocab_size") && cfg_uint(cfg, {"vocab_size"}, 0, false) > V)
    throw ConvertError("config.json: vocab_size exceeds the " + std::to_string(V) + " embedding rows");
  for (const uint64_t v : {V, C, L, H, N, F, Dm, Dd}) size32(v, "a size of the checkpoint");
  if (H * N != C)
    throw ConvertError("checkpoint: time_faaaa is [" + std::to_string(H) + ", " + std::to_string(N) +
                       "] but hidden size is " + std::to_string(C));

  using Spec = spec::Rwkv6;
  Spec::Hyper h{.d_model = size32(C, "hidden size"),
                .n_layer = size32(L, "layers"),
                .vocab = size32(V, "vocab"),
                .head_size = size32(N, "head size"),
                .n_heads = size32(H, "heads"),
                .d_ffn = size32(F, "ffn width"),
                .rank_mix = size32(Dm, "token-shift LoRA rank"),
                .rank_decay = size32(Dd, "decay LoRA rank"),
                .norm_eps = static_cast<float>(eps),
                .gn_eps = nm.hf ? static_cast<float>(1e-5 * divisor * divisor) : 64e-5f,
                .tied_head = false,
                .max_rank = 0};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::Rwkv6Block), nm.hf ? "hf-rwkv6" : "blinkdl-rwkv6",
                      &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, C, V, false, VectorIo{}), in.matrix_dtype);

  // A vector stored as [C], [1, 1, C] or (time_decay in HF files) [H, N].
  auto vec = [&](const std::string& name) -> const SrcTensor* {
    const SrcTensor* t = ck.find(name);
    std::vector<uint64_t> want{C};
    if (t && t->shape.size() == 3) want = {1, 1, C};
    if (t && t->shape.size() == 2) want = {H, N};
    return ts.expect(name, want);
  };
  // Vectors stacked into one [k, C] spec tensor.
  auto stack = [&](const std::vector<std::string>& names, const std::string& out, int layer) {
    std::vector<const SrcTensor*> parts;
    for (const std::string& n : names) parts.push_back(vec(n));
    add_concat(ts, out, layer, std::move(parts));
  };
  // The spec's matrix `out` [r, c] from the checkpoint's `x @ W` form [c, r].
  auto transposed = [&](const std::string& name, const std::string& out, int layer) {
    const std::vector<uint64_t>& rc = ts.shape(out, layer);
    const uint64_t r = rc.at(0), c = rc.at(1);
    const SrcTensor* t = ts.expect(name, {c, r});
    if (t) ts.add(out, layer, t, [&ck, t, r, c] { return transpose(ck.read_f32(*t), c, r); });
  };

  // Model level: embedding with ln0 folded in, final LayerNorm, head.
  const SrcTensor* e = ts.expect(emb_name, {V, C});
  const SrcTensor* l0w = ts.expect(nm.layer(0, "ln0.weight"), {C});
  const SrcTensor* l0b = ts.expect(nm.layer(0, "ln0.bias"), {C});
  if (e && l0w && l0b)
    ts.add("embedding", -1, e, [&ck, e, l0w, l0b, V, C, eps] {
      return layernorm_rows(ck.read_f32(*e), ck.read_f32(*l0w), ck.read_f32(*l0b), V, C, eps);
    });
  ts.copy(nm.top("ln_out.weight"), "norm_f", -1);
  ts.copy(nm.top("ln_out.bias"), "norm_f_bias", -1);
  ts.copy("head.weight", "head", -1);

  for (uint64_t i = 0; i < L; ++i) {
    const int li = static_cast<int>(i);
    auto n = [&](const char* blink) { return nm.layer(i, blink); };
    ts.copy(n("ln1.weight"), "ln1_w", li);
    ts.copy(n("ln1.bias"), "ln1_b", li);
    ts.copy(n("ln2.weight"), "ln2_w", li);
    ts.copy(n("ln2.bias"), "ln2_b", li);
    if (const SrcTensor* t = vec(n("att.time_maa_x"))) ts.add("maa_x", li, t);
    stack({n("att.time_maa_w"), n("att.time_maa_k"), n("att.time_maa_v"), n("att.time_maa_r"), n("att.time_maa_g")},
          "maa", li);
    transposed(n("att.time_maa_w1"), "maa_w1", li);
    // time_maa_w2 [5, Dm, C]: five x @ W blocks, each stored as its [C, Dm] matrix.
    if (const SrcTensor* t = ts.expect(n("att.time_maa_w2"), {5, Dm, C}))
      ts.add("maa_w2", li, t, [&ck, t, Dm, C] {
        const std::vector<float> w = ck.read_f32(*t);
        std::vector<float> o;
        o.reserve(5 * C * Dm);
        for (uint64_t j = 0; j < 5; ++j) {
          const std::vector<float> block(w.begin() + static_cast<std::ptrdiff_t>(j * Dm * C),
                                         w.begin() + static_cast<std::ptrdiff_t>((j + 1) * Dm * C));
          const std::vector<float> tb = transpose(block, Dm, C);
          o.insert(o.end(), tb.begin(), tb.end());
        }
        return o;
      });
    if (const SrcTensor* t = vec(n("att.time_decay"))) ts.add("decay", li, t);
    transposed(n("att.time_decay_w1"), "decay_w1", li);
    transposed(n("att.time_decay_w2"), "decay_w2", li);
    ts.copy(n("att.time_faaaa"), "bonus", li);
    ts.copy(n("att.receptance.weight"), "W_r", li);
    ts.copy(n("att.key.weight"), "W_k", li);
    ts.copy(n("att.value.weight"), "W_v", li);
    ts.copy(n("att.gate.weight"), "W_g", li);
    ts.copy(n("att.output.weight"), "W_o", li);
    ts.copy(n("att.ln_x.weight"), "lnx_w", li);
    ts.copy(n("att.ln_x.bias"), "lnx_b", li);
    stack({n("ffn.time_maa_k"), n("ffn.time_maa_r")}, "ffn_maa", li);
    ts.copy(n("ffn.key.weight"), "ffn_key", li);
    ts.copy(n("ffn.value.weight"), "ffn_value", li);
    ts.copy(n("ffn.receptance.weight"), "ffn_r", li);
  }
  ts.finish("hidden=" + std::to_string(C) + " layers=" + std::to_string(L) + " heads=" + std::to_string(H) +
            " head_size=" + std::to_string(N) + " ffn=" + std::to_string(F) + " LoRA ranks mix/decay=" +
            std::to_string(Dm) + "/" + std::to_string(Dd));
  return content;
}

}  // namespace convert
}  // namespace rill
