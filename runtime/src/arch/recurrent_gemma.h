// RecurrentGemma / Griffin (docs/architectures.md, RecurrentGemma; transformers
// `modeling_recurrent_gemma.py`): what a file holds, for the converter and the runtime. Layers of two
// kinds, each followed by a GeGLU MLP:
//   RglruBlock           gelu(W_y u) * RG-LRU(conv(W_x u)), the RG-LRU's gates block-diagonal
//   LocalAttentionBlock  multi-query attention with partial RoPE over the last `window` tokens
//
// d = d_model, Wl = lru_width, F = d_ffn, H heads of D channels (A = H * D), KV key/value heads,
// K = conv width, bw = Wl / H (a gate block). The converter makes Gemma's RMSNorm weights (1 + w)
// plain and precomputes the RG-LRU's c = 8 softplus(Λ). State: `position` [1] i64 first (tokens seen:
// RoPE's position, the RG-LRU's reset at 0, the ring slot position % window), then per layer either
// conv [K-1, Wl] + rg_lru [Wl] f32, or the key and value rings k_ring, v_ring [window, KV * D] (f32, or
// f16 when kv_f16).
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace recurrent_gemma {

struct Hyper {
  uint32_t d_model, n_layer, vocab, lru_width, d_ffn, n_heads, n_kv_heads, head_dim, window, conv_width, rope_dims;
  float rope_theta, norm_eps, soft_cap, embed_scale;
  bool tied_head, attention_bias, kv_f16;
  uint32_t block;  // derived: lru_width / n_heads, one gate block
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  fb::LayerKind kind;       // RglruBlock or LocalAttentionBlock
  TensorView norm1, norm2;  // [d] f32: temporal and channel pre-norms
  // RglruBlock
  TensorView lin_y, lin_y_b, lin_x, lin_x_b;  // [Wl, d], [Wl]
  TensorView conv_w, conv_b;                  // [K, Wl] f32 (tap-major), [Wl]
  TensorView gate_x, gate_x_b;                // [Wl, bw] f32 or f16: H blocks [bw out, bw in] stacked; [Wl]
  TensorView gate_a, gate_a_b;                // the same, for the recurrence gate
  TensorView lru_c;                           // [Wl] f32: 8 softplus(Λ)
  TensorView lin_out, lin_out_b;              // [d, Wl], [d]
  // LocalAttentionBlock
  TensorView q, k, v, q_b, k_b, v_b;  // [A, d], [KV D, d], [KV D, d] (+ biases when attention_bias)
  TensorView o, o_b;                  // [d, A], [d]
  // MLP
  TensorView gate, gate_b, up, up_b;  // [F, d], [F]
  TensorView down, down_b;            // [d, F], [d]
  // State
  StateAt conv, rg_lru;     // RglruBlock: [K-1, Wl], [Wl] f32
  StateAt k_ring, v_ring;   // LocalAttentionBlock: [window, KV D] f32 or f16
};
struct Globals {
  StateAt position;  // [1] i64
};

inline constexpr Dim<Hyper> d{&Hyper::d_model}, Wl{&Hyper::lru_width}, F{&Hyper::d_ffn}, H{&Hyper::n_heads},
    KV{&Hyper::n_kv_heads}, D{&Hyper::head_dim}, K{&Hyper::conv_width}, bw{&Hyper::block}, W{&Hyper::window};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable;
inline constexpr When<Hyper> kBias = if_set(&Hyper::attention_bias, "attention_bias");

inline constexpr TensorSpec<Hyper, Layer> kMlp[] = {
    {"norm1", &Layer::norm1, {d}, kF32},          {"norm2", &Layer::norm2, {d}, kF32},
    {"gate", &Layer::gate, {F, d}, kQuantizable}, {"gate_b", &Layer::gate_b, {F}, kF32},
    {"up", &Layer::up, {F, d}, kQuantizable},     {"up_b", &Layer::up_b, {F}, kF32},
    {"down", &Layer::down, {d, F}, kQuantizable}, {"down_b", &Layer::down_b, {d}, kF32},
};
inline constexpr TensorSpec<Hyper, Layer> kAttention[] = {
    {"q", &Layer::q, {H * D, d}, kQuantizable},
    {"k", &Layer::k, {KV * D, d}, kQuantizable},
    {"v", &Layer::v, {KV * D, d}, kQuantizable},
    {"q_b", &Layer::q_b, {H * D}, kF32, kBias},
    {"k_b", &Layer::k_b, {KV * D}, kF32, kBias},
    {"v_b", &Layer::v_b, {KV * D}, kF32, kBias},
    {"o", &Layer::o, {d, H * D}, kQuantizable},
    {"o_b", &Layer::o_b, {d}, kF32},
};
// The block-diagonal gates are multiplied a block at a time, in float only (kFloat).
inline constexpr TensorSpec<Hyper, Layer> kRecurrent[] = {
    {"lin_y", &Layer::lin_y, {Wl, d}, kQuantizable},  {"lin_y_b", &Layer::lin_y_b, {Wl}, kF32},
    {"lin_x", &Layer::lin_x, {Wl, d}, kQuantizable},  {"lin_x_b", &Layer::lin_x_b, {Wl}, kF32},
    {"conv_weight", &Layer::conv_w, {K, Wl}, kF32},   {"conv_bias", &Layer::conv_b, {Wl}, kF32},
    {"gate_x", &Layer::gate_x, {Wl, bw}, DClass::kFloat}, {"gate_x_b", &Layer::gate_x_b, {Wl}, kF32},
    {"gate_a", &Layer::gate_a, {Wl, bw}, DClass::kFloat}, {"gate_a_b", &Layer::gate_a_b, {Wl}, kF32},
    {"lru_c", &Layer::lru_c, {Wl}, kF32},             {"lin_out", &Layer::lin_out, {d, Wl}, kQuantizable},
    {"lin_out_b", &Layer::lin_out_b, {d}, kF32},
};
inline constexpr StateSpec<Hyper, Layer> kAttentionState[] = {
    {"k_ring", &Layer::k_ring, {W, KV * D}, StateType::kF32, &Hyper::kv_f16},
    {"v_ring", &Layer::v_ring, {W, KV * D}, StateType::kF32, &Hyper::kv_f16},
};
inline constexpr StateSpec<Hyper, Layer> kRecurrentState[] = {
    {"conv", &Layer::conv, {K - 1, Wl}},
    {"rg_lru", &Layer::rg_lru, {Wl}},
};
inline constexpr StateSpec<Hyper, Globals> kPosition[] = {{"position", &Globals::position, {1}, StateType::kI64}};

inline constexpr uint32_t kMaxHeadDim = 512;  // the attention op's per-head buffers

}  // namespace recurrent_gemma

struct RecurrentGemma {
  using Hyper = recurrent_gemma::Hyper;
  using Layer = recurrent_gemma::Layer;
  using Globals = recurrent_gemma::Globals;
  static constexpr const char* kName = "recurrent_gemma";
  static constexpr Arch kArch = Arch::kRecurrentGemma;
  static constexpr fb::Arch kFileArch = fb::Arch::RecurrentGemma;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::RecurrentGemmaParams;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kTokens};
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},      {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 1, 1u << 22},     {"lru_width", &Hyper::lru_width, 1, 1u << 16},
      {"d_ffn", &Hyper::d_ffn, 1, 1u << 18},          {"n_heads", &Hyper::n_heads, 1, 1024},
      {"n_kv_heads", &Hyper::n_kv_heads, 1, 1024},    {"head_dim", &Hyper::head_dim, 1, recurrent_gemma::kMaxHeadDim},
      {"window", &Hyper::window, 1, 1u << 17},        {"conv_width", &Hyper::conv_width, 1, 64},
      {"rope_dims", &Hyper::rope_dims, 0, recurrent_gemma::kMaxHeadDim}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {
      {fb::LayerKind::RglruBlock, {recurrent_gemma::kMlp, recurrent_gemma::kRecurrent}, recurrent_gemma::kRecurrentState},
      {fb::LayerKind::LocalAttentionBlock, {recurrent_gemma::kMlp, recurrent_gemma::kAttention},
       recurrent_gemma::kAttentionState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = {};
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = recurrent_gemma::kPosition, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::RecurrentGemmaParams* p = m.params_as_RecurrentGemmaParams();
    if (!p) return fail(err, Status::kCorrupt, "recurrent_gemma hyper-parameters are missing");
    if (p->kv_dtype() != fb::DType::F32 && p->kv_dtype() != fb::DType::F16)
      return fail(err, Status::kCorrupt, "recurrent_gemma kv_dtype %s is neither f32 nor f16",
                  fb::EnumNameDType(p->kv_dtype()));
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .lru_width = p->lru_width(),
               .d_ffn = p->d_ffn(),
               .n_heads = p->n_heads(),
               .n_kv_heads = p->n_kv_heads(),
               .head_dim = p->head_dim(),
               .window = p->window(),
               .conv_width = p->conv_width(),
               .rope_dims = p->rope_dims(),
               .rope_theta = p->rope_theta(),
               .norm_eps = p->norm_eps(),
               .soft_cap = p->logits_soft_cap(),
               .embed_scale = p->embed_scale(),
               .tied_head = p->tied_head(),
               .attention_bias = p->attention_bias(),
               .kv_f16 = p->kv_dtype() == fb::DType::F16,
               .block = 0};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (h->lru_width % h->n_heads != 0)
      return fail(err, Status::kCorrupt, "recurrent_gemma lru_width %u is not a multiple of n_heads %u", h->lru_width,
                  h->n_heads);
    if (h->n_heads % h->n_kv_heads != 0)
      return fail(err, Status::kCorrupt, "recurrent_gemma n_heads %u is not a multiple of n_kv_heads %u", h->n_heads,
                  h->n_kv_heads);
    if (h->rope_dims % 2 != 0 || h->rope_dims > h->head_dim)
      return fail(err, Status::kCorrupt, "recurrent_gemma rope_dims %u is odd or exceeds head_dim %u", h->rope_dims,
                  h->head_dim);
    if (static_cast<uint64_t>(h->n_kv_heads) * h->head_dim > (1u << 16))
      return fail(err, Status::kCorrupt, "recurrent_gemma n_kv_heads * head_dim exceeds 65536");
    if (!in_open(h->norm_eps, 0.f, 1.f))
      return fail(err, Status::kCorrupt, "recurrent_gemma norm eps %g not in (0, 1)", static_cast<double>(h->norm_eps));
    if (!in_open(h->rope_theta, 1.f, 1e12f))
      return fail(err, Status::kCorrupt, "recurrent_gemma rope_theta %g not in (1, 1e12)",
                  static_cast<double>(h->rope_theta));
    if (!(h->soft_cap >= 0.f && h->soft_cap < 1e6f) || !in_open(h->embed_scale, 0.f, 1e6f))
      return fail(err, Status::kCorrupt, "recurrent_gemma logits_soft_cap %g or embed_scale %g out of range",
                  static_cast<double>(h->soft_cap), static_cast<double>(h->embed_scale));
    h->block = h->lru_width / h->n_heads;
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::RecurrentGemmaParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_lru_width(h.lru_width);
    p.add_d_ffn(h.d_ffn);
    p.add_n_heads(h.n_heads);
    p.add_n_kv_heads(h.n_kv_heads);
    p.add_head_dim(h.head_dim);
    p.add_window(h.window);
    p.add_conv_width(h.conv_width);
    p.add_rope_dims(h.rope_dims);
    p.add_rope_theta(h.rope_theta);
    p.add_norm_eps(h.norm_eps);
    p.add_logits_soft_cap(h.soft_cap);
    p.add_embed_scale(h.embed_scale);
    p.add_tied_head(h.tied_head);
    p.add_attention_bias(h.attention_bias);
    p.add_kv_dtype(h.kv_f16 ? fb::DType::F16 : fb::DType::F32);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
