// Mamba-2 / attention hybrids (docs/architectures.md, Mamba-2 hybrids): IBM Granite 4.0-H
// (transformers GraniteMoeHybridForCausalLM, dense) and NVIDIA Nemotron-H (NemotronHForCausalLM). What a
// file holds, for the converter and the runtime.
//
// Every layer is one pre-norm residual block, h += residual_scale * block(RMSNorm(h)), of a kind:
//   Mamba2Mixer     the Mamba-2 mixer (as arch/mamba2.h), its gated RMSNorm over norm_groups groups
//   AttentionBlock  grouped-query attention over all the stream's tokens (at most max_context), keys and
//                   values in a ring in the state, RoPE on rope_dims channels (0: none)
//   MlpBlock        down(act(gate u) * up u), or down(act(up u)) when not gated; no biases
// A Granite layer (mixer or attention, then its MLP) is two blocks; a Nemotron-H layer is one.
//
// d = d_model; Mamba: E = d_inner = H * P, G groups, N = d_state, K = d_conv; attention: QH heads and KV
// key/value heads of D channels, C = max_context slots; MLP: F = d_ffn. State: `position` [1] i64 first
// (tokens seen: RoPE's position, the ring slot position % C), then per layer: conv [K-1, E + 2GN] and
// ssm [H, P, N] f32 (mixer), or k_ring, v_ring [C, KV * D] f32 or f16 (attention); an MLP has none.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace mamba2_hybrid {

inline constexpr uint32_t kMaxHeadDim = 512;      // the attention op's per-head buffers
inline constexpr uint32_t kMaxContext = 1u << 20;  // ring slots a model may be loaded with

struct Hyper {
  uint32_t d_model, n_layer, vocab;
  uint32_t d_inner, d_state, d_conv, n_heads, head_dim, n_groups, norm_groups;
  uint32_t attn_heads, kv_heads, attn_head_dim, max_context, rope_dims;
  uint32_t d_ffn, mlp_act;  // mlp_act 0: SiLU, 1: squared ReLU
  float dt_min, dt_max, rope_theta, attn_scale, norm_eps, embed_scale, residual_scale, logits_scale;
  bool tied_head, conv_bias, attention_bias, kv_f16, mlp_gated;
  uint32_t conv_dim() const { return d_inner + 2 * n_groups * d_state; }
  uint32_t in_rows() const { return 2 * d_inner + 2 * n_groups * d_state + n_heads; }
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  fb::LayerKind kind;
  TensorView norm;  // [d] f32, the block's pre-norm
  // Mamba2Mixer (the names and storage of arch/mamba2.h)
  TensorView in_proj, conv_w, conv_b, dt_b, A, D, gate_norm, out_proj;
  StateAt conv, ssm;
  // AttentionBlock
  TensorView q, k, v, o, q_b, k_b, v_b, o_b;  // [QH D, d], [KV D, d], [KV D, d], [d, QH D] (+ biases)
  StateAt k_ring, v_ring;                      // [C, KV D]
  // MlpBlock
  TensorView gate, up, down;  // [F, d] (when gated), [F, d], [d, F]
};
struct Globals {
  StateAt position;  // [1] i64
};

inline constexpr Dim<Hyper> d{&Hyper::d_model}, E{&Hyper::d_inner}, N{&Hyper::d_state}, K{&Hyper::d_conv},
    H{&Hyper::n_heads}, P{&Hyper::head_dim}, G{&Hyper::n_groups}, QH{&Hyper::attn_heads}, KV{&Hyper::kv_heads},
    D{&Hyper::attn_head_dim}, C{&Hyper::max_context}, F{&Hyper::d_ffn};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable;
inline constexpr When<Hyper> kAttnBias = if_set(&Hyper::attention_bias, "attention_bias");

inline constexpr TensorSpec<Hyper, Layer> kNorm[] = {{"norm", &Layer::norm, {d}, kF32}};
inline constexpr TensorSpec<Hyper, Layer> kMixer[] = {
    {"in_proj", &Layer::in_proj, {2 * E + 2 * G * N + H, d}, kQuantizable},
    {"conv_weight", &Layer::conv_w, {K, E + 2 * G * N}, kF32},
    {"conv_bias", &Layer::conv_b, {E + 2 * G * N}, kF32, if_set(&Hyper::conv_bias, "conv_bias")},
    {"dt_bias", &Layer::dt_b, {H}, kF32},
    {"A", &Layer::A, {H}, kF32},
    {"D", &Layer::D, {E}, kF32},
    {"gate_norm", &Layer::gate_norm, {E}, kF32},
    {"out_proj", &Layer::out_proj, {d, E}, kQuantizable},
};
inline constexpr TensorSpec<Hyper, Layer> kAttention[] = {
    {"q", &Layer::q, {QH * D, d}, kQuantizable},      {"k", &Layer::k, {KV * D, d}, kQuantizable},
    {"v", &Layer::v, {KV * D, d}, kQuantizable},      {"o", &Layer::o, {d, QH * D}, kQuantizable},
    {"q_b", &Layer::q_b, {QH * D}, kF32, kAttnBias},  {"k_b", &Layer::k_b, {KV * D}, kF32, kAttnBias},
    {"v_b", &Layer::v_b, {KV * D}, kF32, kAttnBias},  {"o_b", &Layer::o_b, {d}, kF32, kAttnBias},
};
inline constexpr TensorSpec<Hyper, Layer> kMlp[] = {
    {"gate", &Layer::gate, {F, d}, kQuantizable, if_set(&Hyper::mlp_gated, "a gated MLP")},
    {"up", &Layer::up, {F, d}, kQuantizable},
    {"down", &Layer::down, {d, F}, kQuantizable},
};
inline constexpr StateSpec<Hyper, Layer> kMixerState[] = {
    {"conv", &Layer::conv, {K - 1, E + 2 * G * N}},
    {"ssm", &Layer::ssm, {H, P, N}},
};
inline constexpr StateSpec<Hyper, Layer> kAttentionState[] = {
    {"k_ring", &Layer::k_ring, {C, KV * D}, StateType::kF32, &Hyper::kv_f16},
    {"v_ring", &Layer::v_ring, {C, KV * D}, StateType::kF32, &Hyper::kv_f16},
};
inline constexpr StateSpec<Hyper, Globals> kPosition[] = {{"position", &Globals::position, {1}, StateType::kI64}};

}  // namespace mamba2_hybrid

struct Mamba2Hybrid {
  using Hyper = mamba2_hybrid::Hyper;
  using Layer = mamba2_hybrid::Layer;
  using Globals = mamba2_hybrid::Globals;
  static constexpr const char* kName = "mamba2_hybrid";
  static constexpr Arch kArch = Arch::kMamba2Hybrid;
  static constexpr fb::Arch kFileArch = fb::Arch::Mamba2Hybrid;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::Mamba2HybridParams;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kTokens};
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},
      {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 1, 1u << 22},
      {"d_inner", &Hyper::d_inner, 1, 1u << 18},
      {"d_state", &Hyper::d_state, 1, 1024},
      {"d_conv", &Hyper::d_conv, 2, 64},
      {"n_heads", &Hyper::n_heads, 1, 1u << 12},
      {"head_dim", &Hyper::head_dim, 1, 1u << 12},
      {"n_groups", &Hyper::n_groups, 1, 1u << 12},
      {"norm_groups", &Hyper::norm_groups, 1, 1u << 12},
      {"attn_heads", &Hyper::attn_heads, 1, 1024},
      {"kv_heads", &Hyper::kv_heads, 1, 1024},
      {"attn_head_dim", &Hyper::attn_head_dim, 1, mamba2_hybrid::kMaxHeadDim},
      {"max_context", &Hyper::max_context, 1, mamba2_hybrid::kMaxContext},
      {"rope_dims", &Hyper::rope_dims, 0, mamba2_hybrid::kMaxHeadDim},
      {"d_ffn", &Hyper::d_ffn, 1, 1u << 18},
      {"mlp_act", &Hyper::mlp_act, 0, 1}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {
      {fb::LayerKind::Mamba2Mixer, {mamba2_hybrid::kNorm, mamba2_hybrid::kMixer}, mamba2_hybrid::kMixerState},
      {fb::LayerKind::AttentionBlock, {mamba2_hybrid::kNorm, mamba2_hybrid::kAttention}, mamba2_hybrid::kAttentionState},
      {fb::LayerKind::MlpBlock, {mamba2_hybrid::kNorm, mamba2_hybrid::kMlp}, {}}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = {};
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = mamba2_hybrid::kPosition, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::Mamba2HybridParams* p = m.params_as_Mamba2HybridParams();
    if (!p) return fail(err, Status::kCorrupt, "mamba2_hybrid hyper-parameters are missing");
    if (p->kv_dtype() != fb::DType::F32 && p->kv_dtype() != fb::DType::F16)
      return fail(err, Status::kCorrupt, "mamba2_hybrid kv_dtype %s is neither f32 nor f16",
                  fb::EnumNameDType(p->kv_dtype()));
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .d_inner = p->d_inner(),
               .d_state = p->d_state(),
               .d_conv = p->d_conv(),
               .n_heads = p->n_heads(),
               .head_dim = p->head_dim(),
               .n_groups = p->n_groups(),
               .norm_groups = p->norm_groups(),
               .attn_heads = p->attn_heads(),
               .kv_heads = p->kv_heads(),
               .attn_head_dim = p->attn_head_dim(),
               .max_context = p->max_context(),
               .rope_dims = p->rope_dims(),
               .d_ffn = p->d_ffn(),
               .mlp_act = p->mlp_act(),
               .dt_min = p->dt_min(),
               .dt_max = p->dt_max(),
               .rope_theta = p->rope_theta(),
               .attn_scale = p->attn_scale(),
               .norm_eps = p->norm_eps(),
               .embed_scale = p->embed_scale(),
               .residual_scale = p->residual_scale(),
               .logits_scale = p->logits_scale(),
               .tied_head = p->tied_head(),
               .conv_bias = p->conv_bias(),
               .attention_bias = p->attention_bias(),
               .kv_f16 = p->kv_dtype() == fb::DType::F16,
               .mlp_gated = p->mlp_gated()};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (h->n_groups > h->n_heads || h->n_heads % h->n_groups != 0 ||
        static_cast<uint64_t>(h->n_heads) * h->head_dim != h->d_inner)
      return fail(err, Status::kCorrupt,
                  "mamba2_hybrid d_inner %u != n_heads %u * head_dim %u, or heads not a multiple of groups %u",
                  h->d_inner, h->n_heads, h->head_dim, h->n_groups);
    if (h->d_inner % h->norm_groups != 0)
      return fail(err, Status::kCorrupt, "mamba2_hybrid d_inner %u is not a multiple of norm_groups %u", h->d_inner,
                  h->norm_groups);
    if (h->attn_heads % h->kv_heads != 0)
      return fail(err, Status::kCorrupt, "mamba2_hybrid attn_heads %u is not a multiple of kv_heads %u", h->attn_heads,
                  h->kv_heads);
    if (h->rope_dims % 2 != 0 || h->rope_dims > h->attn_head_dim)
      return fail(err, Status::kCorrupt, "mamba2_hybrid rope_dims %u is odd or exceeds attn_head_dim %u", h->rope_dims,
                  h->attn_head_dim);
    if (static_cast<uint64_t>(h->kv_heads) * h->attn_head_dim > (1u << 16))
      return fail(err, Status::kCorrupt, "mamba2_hybrid kv_heads * attn_head_dim exceeds 65536");
    if (!in_open(h->norm_eps, 0.f, 1.f) || !(h->dt_min >= 0.f) || !(h->dt_max > h->dt_min))
      return fail(err, Status::kCorrupt, "mamba2_hybrid norm_eps %g or dt limits [%g, %g] are not sane",
                  static_cast<double>(h->norm_eps), static_cast<double>(h->dt_min), static_cast<double>(h->dt_max));
    if (!in_open(h->rope_theta, 1.f, 1e12f) || !in_open(h->attn_scale, 0.f, 1e6f))
      return fail(err, Status::kCorrupt, "mamba2_hybrid rope_theta %g or attn_scale %g out of range",
                  static_cast<double>(h->rope_theta), static_cast<double>(h->attn_scale));
    for (const float v : {h->embed_scale, h->residual_scale, h->logits_scale})
      if (!in_open(v, 0.f, 1e6f))
        return fail(err, Status::kCorrupt, "mamba2_hybrid embed_scale, residual_scale or logits_scale %g not in (0, 1e6)",
                    static_cast<double>(v));
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::Mamba2HybridParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_d_inner(h.d_inner);
    p.add_d_state(h.d_state);
    p.add_d_conv(h.d_conv);
    p.add_n_heads(h.n_heads);
    p.add_head_dim(h.head_dim);
    p.add_n_groups(h.n_groups);
    p.add_norm_groups(h.norm_groups);
    p.add_dt_min(h.dt_min);
    p.add_dt_max(h.dt_max);
    p.add_conv_bias(h.conv_bias);
    p.add_attn_heads(h.attn_heads);
    p.add_kv_heads(h.kv_heads);
    p.add_attn_head_dim(h.attn_head_dim);
    p.add_max_context(h.max_context);
    p.add_rope_dims(h.rope_dims);
    p.add_rope_theta(h.rope_theta);
    p.add_attn_scale(h.attn_scale);
    p.add_attention_bias(h.attention_bias);
    p.add_kv_dtype(h.kv_f16 ? fb::DType::F16 : fb::DType::F32);
    p.add_d_ffn(h.d_ffn);
    p.add_mlp_act(static_cast<uint8_t>(h.mlp_act));
    p.add_mlp_gated(h.mlp_gated);
    p.add_norm_eps(h.norm_eps);
    p.add_embed_scale(h.embed_scale);
    p.add_residual_scale(h.residual_scale);
    p.add_logits_scale(h.logits_scale);
    p.add_tied_head(h.tied_head);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
