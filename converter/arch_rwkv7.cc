// RWKV-7 checkpoints (docs/architectures.md, RWKV-7): the flash-linear-attention Hugging Face layout
// (`rwkv7-*-world`, model_type "rwkv7") and BlinkDL's original naming stored as safetensors (no
// config.json needed: every size comes from tensor shapes). LoRA ranks, head size and FFN width are
// read from shapes, never from a formula. The embedding LayerNorm (ln0 / pre_norm) is folded into the
// embedding rows here, so the runtime does not apply it.
#include <cmath>
#include <fstream>

#include "arch/rwkv7.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "head_dim", "num_heads",
    "intermediate_size", "decay_low_rank_dim", "a_low_rank_dim", "v_low_rank_dim", "gate_low_rank_dim", "norm_eps",
    "norm_bias", "norm_first", "hidden_act", "vocab_size", "tie_word_embeddings", "attn", "value_dim",
    "bos_token_id", "eos_token_id"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "hidden_ratio", "attn_mode", "fuse_norm",
    "fuse_cross_entropy", "fuse_swiglu", "fuse_linear_cross_entropy", "use_l2warp", "use_cache", "initializer_range",
    "max_position_embeddings", "pad_token_id"};

enum class Layout { kFla, kBlink };

// Checkpoint names of one logical tensor in each layout.
struct Names {
  Layout layout;
  std::string layer(uint64_t i, const char* fla, const char* blink) const {
    return (layout == Layout::kFla ? "model.layers." : "blocks.") + std::to_string(i) + "." +
           (layout == Layout::kFla ? fla : blink);
  }
};

}  // namespace

bool rwkv7_matches(const ArchInput& in) {
  return (in.ck.find("emb.weight") && in.ck.find("blocks.0.att.r_k")) || model_type_is(in, "rwkv7");
}

FileContent rwkv7_content(const ArchInput& in) {
  const Checkpoint& ck = in.ck;
  const Names nm{ck.find("emb.weight") ? Layout::kBlink : Layout::kFla};
  const bool fla = nm.layout == Layout::kFla;
  const json cfg = parse_config(in.config_text.empty() ? "{}" : in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  if (cfg.contains("attn") && !cfg["attn"].is_null())
    throw ConvertError("config.json: \"attn\" is set (an RWKV-7/attention hybrid); rill runs pure RWKV-7 only");
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "sqrelu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (sqrelu is)");
  if (!cfg_bool(cfg, {"norm_bias"}, true) || !cfg_bool(cfg, {"norm_first"}, true))
    throw ConvertError("config.json: norm_bias=false or norm_first=false is not supported");

  // Sizes from shapes.
  const std::string emb_name = fla ? "model.embeddings.weight" : "emb.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!emb || emb->shape.size() != 2) throw ConvertError("checkpoint: " + emb_name + " missing or not 2-D");
  const uint64_t V = emb->shape[0], C = emb->shape[1];
  uint64_t L = 0;
  while (ck.find(nm.layer(L, "attn_norm.weight", "ln1.weight"))) ++L;
  const SrcTensor* rk = ck.find(nm.layer(0, "attn.r_k", "att.r_k"));
  if (L == 0 || !rk || rk->shape.size() != 2)
    throw ConvertError("checkpoint: no RWKV-7 blocks found (expected " + nm.layer(0, "attn.r_k", "att.r_k") + " [H, N])");
  const uint64_t H = rk->shape[0], N = rk->shape[1];
  auto rows_of = [&](const std::string& name, size_t dim) -> uint64_t {
    const SrcTensor* t = ck.find(name);
    if (!t || t->shape.size() != 2) throw ConvertError("checkpoint: " + name + " missing or not 2-D");
    return t->shape[dim];
  };
  // fla lora.0 is [rank, C]; BlinkDL w1 is [C, rank].
  auto rank = [&](uint64_t layer, const char* f, const char* b) {
    return fla ? rows_of(nm.layer(layer, f, b), 0) : rows_of(nm.layer(layer, f, b), 1);
  };
  const uint64_t Dw = rank(0, "attn.w_lora.lora.0.weight", "att.w1");
  const uint64_t Da = rank(0, "attn.a_lora.lora.0.weight", "att.a1");
  const uint64_t Dg = rank(0, "attn.g_lora.lora.0.weight", "att.g1");
  const uint64_t Dv = L > 1 ? rank(1, "attn.v_lora.lora.0.weight", "att.v1") : 1;
  const uint64_t F = rows_of(nm.layer(0, "ffn.key.weight", "ffn.key.weight"), 0);
  const double eps = cfg.contains("norm_eps") ? cfg_number(cfg["norm_eps"], "norm_eps") : 1e-5;
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: norm_eps must be in (0, 1)");

  // The config, where given, must agree with the shapes.
  struct Agree {
    const char* key;
    uint64_t shape_value;
  } agree[] = {{"hidden_size", C}, {"num_hidden_layers", L}, {"head_dim", N}, {"num_heads", H},
               {"decay_low_rank_dim", Dw}, {"a_low_rank_dim", Da}, {"v_low_rank_dim", Dv},
               {"gate_low_rank_dim", Dg}, {"intermediate_size", F}};
  for (const Agree& a : agree) {
    if (!cfg.contains(a.key) || cfg[a.key].is_null()) continue;
    const uint64_t v = cfg_uint(cfg, {a.key}, 0, false);
    if (v != a.shape_value)
      throw ConvertError(std::string("config.json: ") + a.key + " = " + std::to_string(v) + " but the tensors say " +
                         std::to_string(a.shape_value));
  }
  if (cfg.contains("vocab_size") && cfg_uint(cfg, {"vocab_size"}, 0, false) > V)
    throw ConvertError("config.json: vocab_size exceeds the " + std::to_string(V) + " embedding rows");
  if (cfg.contains("value_dim") && !cfg["value_dim"].is_null()) {
    const json& vd = cfg["value_dim"];
    for (const json& x : vd.is_array() ? vd : json::array({vd}))
      if (!x.is_number_integer() || x.get<uint64_t>() != C)
        throw ConvertError("config.json: value_dim different from hidden_size is not supported");
  }
  for (const uint64_t v : {V, C, L, H, N, F, Dw, Da, Dv, Dg}) size32(v, "a size of the checkpoint");
  if (H * N != C)
    throw ConvertError("checkpoint: r_k is [" + std::to_string(H) + ", " + std::to_string(N) + "] but hidden size is " +
                       std::to_string(C));

  // GroupNorm eps of the attention output, as each layout's authors compute it: fla's RWKV7Attention
  // uses head_dim * norm_eps; BlinkDL's RWKV-v7 code (ln_x) a fixed 64e-5 whatever the head size.
  using Spec = spec::Rwkv7;
  Spec::Hyper h{.d_model = size32(C, "hidden size"),
                .n_layer = size32(L, "layers"),
                .vocab = size32(V, "vocab"),
                .head_size = size32(N, "head size"),
                .n_heads = size32(H, "heads"),
                .d_ffn = size32(F, "ffn width"),
                .rank_w = size32(Dw, "decay LoRA rank"),
                .rank_a = size32(Da, "in-context rate LoRA rank"),
                .rank_v = size32(Dv, "value residual LoRA rank"),
                .rank_g = size32(Dg, "gate LoRA rank"),
                .norm_eps = static_cast<float>(eps),
                .gn_eps = fla ? static_cast<float>(eps * static_cast<double>(N)) : 64e-5f,
                .tied_head = false,
                .max_rank = 0};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::Rwkv7Block), fla ? "fla-rwkv7" : "blinkdl-rwkv7",
                      &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, C, V, false, VectorIo{}), in.matrix_dtype);

  // A vector that may be stored as [C] or [1, 1, C].
  auto vec = [&](const std::string& name) -> const SrcTensor* {
    const SrcTensor* t = ck.find(name);
    return ts.expect(name, t && t->shape.size() == 3 ? std::vector<uint64_t>{1, 1, C} : std::vector<uint64_t>{C});
  };
  auto copy_vec = [&](const std::string& name, const std::string& out, int layer) { ts.add(out, layer, vec(name)); };
  // The spec's matrix `out` [r, c], stored [r, c] in the checkpoint or, when `transposed`, [c, r].
  auto mat = [&](const std::string& name, const std::string& out, int layer, bool transposed) {
    const std::vector<uint64_t>& rc = ts.shape(out, layer);
    const uint64_t r = rc.at(0), c = rc.at(1);
    const SrcTensor* t = ts.expect(name, transposed ? std::vector<uint64_t>{c, r} : std::vector<uint64_t>{r, c});
    if (!transposed) return ts.add(out, layer, t);
    ts.add(out, layer, t, [&ck, t, r, c] { return transpose(ck.read_f32(*t), c, r); });
  };

  // Model level: embedding with ln0 folded in, final LayerNorm, head.
  const SrcTensor* e = ts.expect(emb_name, {V, C});
  const SrcTensor* l0w = ts.expect(fla ? "model.layers.0.pre_norm.weight" : "blocks.0.ln0.weight", {C});
  const SrcTensor* l0b = ts.expect(fla ? "model.layers.0.pre_norm.bias" : "blocks.0.ln0.bias", {C});
  if (l0w && l0b)
    ts.add("embedding", -1, e, [&ck, e, l0w, l0b, V, C, eps] {
      return layernorm_rows(ck.read_f32(*e), ck.read_f32(*l0w), ck.read_f32(*l0b), V, C, eps);
    });
  ts.copy(fla ? "model.norm.weight" : "ln_out.weight", "norm_f", -1);
  ts.copy(fla ? "model.norm.bias" : "ln_out.bias", "norm_f_bias", -1);
  ts.copy(fla ? "lm_head.weight" : "head.weight", "head", -1);

  for (uint64_t i = 0; i < L; ++i) {
    const int li = static_cast<int>(i);
    auto n = [&](const char* f, const char* b) { return nm.layer(i, f, b); };
    ts.copy(n("attn_norm.weight", "ln1.weight"), "ln1_w", li);
    ts.copy(n("attn_norm.bias", "ln1.bias"), "ln1_b", li);
    ts.copy(n("ffn_norm.weight", "ln2.weight"), "ln2_w", li);
    ts.copy(n("ffn_norm.bias", "ln2.bias"), "ln2_b", li);
    // Token-shift mixes, one [6, C] tensor in the order r, w, k, v, a, g (old fla: stacked attn.x_x).
    if (fla && ck.find(n("attn.x_x", "")) ) {
      ts.copy(n("attn.x_x", ""), "att_mix", li);
    } else {
      std::vector<const SrcTensor*> mixes;
      for (const char* m : {"r", "w", "k", "v", "a", "g"})
        mixes.push_back(vec(n((std::string("attn.x_") + m).c_str(), (std::string("att.x_") + m).c_str())));
      add_concat(ts, "att_mix", li, std::move(mixes));
    }
    // LoRAs: down [rank, C] and up [C, rank] in nn.Linear layout (BlinkDL's transposed); bias = the x0
    // vector.
    for (const char* key : {"w", "a", "v", "g"}) {
      const std::string k = key;
      if (k == "v" && i == 0) {
        // Layer 0 has no value residual; some files still carry its (unused) tensors: accept, ignore.
        for (const char* part : {"attn.v_lora.lora.0.weight", "attn.v_lora.lora.2.weight", "attn.v_lora.lora.2.bias",
                                 "att.v0", "att.v1", "att.v2"})
          if (const SrcTensor* t = ck.find(n(part, part))) ts.expect(t->name, t->shape);
        continue;
      }
      const std::string down = fla ? n(("attn." + k + "_lora.lora.0.weight").c_str(), "") : n("", ("att." + k + "1").c_str());
      const std::string up = fla ? n(("attn." + k + "_lora.lora.2.weight").c_str(), "") : n("", ("att." + k + "2").c_str());
      mat(down, k + "1", li, !fla);
      mat(up, k + "2", li, !fla);
      if (k != "g") {
        const std::string bias = fla ? n(("attn." + k + "_lora.lora.2.bias").c_str(), "") : n("", ("att." + k + "0").c_str());
        copy_vec(bias, k + "0", li);
      }
    }
    copy_vec(n("attn.k_k", "att.k_k"), "k_k", li);
    copy_vec(n("attn.k_a", "att.k_a"), "k_a", li);
    const SrcTensor* rkt = ts.expect(n("attn.r_k", "att.r_k"), {H, N});
    ts.add("r_k", li, rkt);
    mat(n("attn.r_proj.weight", "att.receptance.weight"), "W_r", li, false);
    mat(n("attn.k_proj.weight", "att.key.weight"), "W_k", li, false);
    mat(n("attn.v_proj.weight", "att.value.weight"), "W_v", li, false);
    mat(n("attn.o_proj.weight", "att.output.weight"), "W_o", li, false);
    ts.copy(n("attn.g_norm.weight", "att.ln_x.weight"), "lnx_w", li);
    ts.copy(n("attn.g_norm.bias", "att.ln_x.bias"), "lnx_b", li);
    copy_vec(n("ffn.x_k", "ffn.x_k"), "ffn_mix", li);
    mat(n("ffn.key.weight", "ffn.key.weight"), "ffn_key", li, false);
    mat(n("ffn.value.weight", "ffn.value.weight"), "ffn_value", li, false);
  }
  ts.finish("hidden=" + std::to_string(C) + " layers=" + std::to_string(L) + " heads=" + std::to_string(H) +
            " head_size=" + std::to_string(N) + " ffn=" + std::to_string(F) + " LoRA ranks w/a/v/g=" +
            std::to_string(Dw) + "/" + std::to_string(Da) + "/" + std::to_string(Dv) + "/" + std::to_string(Dg));
  return content;
}

}  // namespace convert
}  // namespace rill
