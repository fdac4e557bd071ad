// Gated DeltaNet (docs/architectures.md, Gated DeltaNet; flash-linear-attention's
// GatedDeltaNetForCausalLM): what a file holds, for the converter and the runtime.
//
// d = d_model; H query/key heads of head_k K, Hv value heads of head_v V (Hv a multiple of H: each key
// head serves Hv / H value heads); Kc the short convolution's width, over q, k and v (conv_dim =
// 2HK + HvV); F the MLP's width. Every layer is a pre-norm block, the gated delta rule then a SwiGLU
// MLP. Per layer, state: the conv history [Kc-1, conv_dim] (oldest first) and the matrix state
// [Hv, V, K] (S[h][i][j], i the value index, j the key index), f32.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace gated_deltanet {

struct Hyper {
  uint32_t d_model, n_layer, vocab, n_heads, n_v_heads, head_k, head_v, d_conv, d_ffn;
  float norm_eps;
  bool tied_head, neg_eigval;  // neg_eigval: β = 2 sigmoid(.) (allow_neg_eigval), else sigmoid(.)
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView attn_norm;  // [d] f32
  TensorView in_proj;    // [2HK + HvV + 2Hv, d]  rows: q (HK), k (HK), v (HvV), a (Hv), b (Hv)
  TensorView conv_w;     // [Kc, 2HK + HvV] f32
  TensorView dt_b;       // [Hv] f32
  TensorView A;          // [Hv] f32, = -exp(A_log)
  TensorView g_proj;     // [HvV, d] the output gate
  TensorView o_norm;     // [V] f32, the gated RMSNorm's weight (one per value channel of a head)
  TensorView out_proj;   // [d, HvV]
  TensorView mlp_norm;   // [d] f32
  TensorView gate, up;   // [F, d]
  TensorView down;       // [d, F]
  StateAt conv;          // [Kc-1, 2HK + HvV] f32
  StateAt wkv;           // [Hv, V, K] f32
};
struct Globals {};

inline constexpr Dim<Hyper> d{&Hyper::d_model}, H{&Hyper::n_heads}, Hv{&Hyper::n_v_heads}, K{&Hyper::head_k},
    V{&Hyper::head_v}, Kc{&Hyper::d_conv}, F{&Hyper::d_ffn};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable;

inline constexpr TensorSpec<Hyper, Layer> kBlock[] = {
    {"attn_norm", &Layer::attn_norm, {d}, kF32},
    {"in_proj", &Layer::in_proj, {2 * H * K + Hv * V + 2 * Hv, d}, kQuantizable},
    {"conv_weight", &Layer::conv_w, {Kc, 2 * H * K + Hv * V}, kF32},
    {"dt_bias", &Layer::dt_b, {Hv}, kF32},
    {"A", &Layer::A, {Hv}, kF32},
    {"g_proj", &Layer::g_proj, {Hv * V, d}, kQuantizable},
    {"o_norm", &Layer::o_norm, {V}, kF32},
    {"out_proj", &Layer::out_proj, {d, Hv * V}, kQuantizable},
    {"mlp_norm", &Layer::mlp_norm, {d}, kF32},
    {"gate", &Layer::gate, {F, d}, kQuantizable},
    {"up", &Layer::up, {F, d}, kQuantizable},
    {"down", &Layer::down, {d, F}, kQuantizable},
};
inline constexpr StateSpec<Hyper, Layer> kBlockState[] = {
    {"conv", &Layer::conv, {Kc - 1, 2 * H * K + Hv * V}},
    {"wkv", &Layer::wkv, {Hv, V, K}},
};

}  // namespace gated_deltanet

struct GatedDeltaNet {
  using Hyper = gated_deltanet::Hyper;
  using Layer = gated_deltanet::Layer;
  using Globals = gated_deltanet::Globals;
  static constexpr const char* kName = "gated_deltanet";
  static constexpr Arch kArch = Arch::kGatedDeltaNet;
  static constexpr fb::Arch kFileArch = fb::Arch::GatedDeltaNet;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::GatedDeltaNetParams;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kTokens};
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},   {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 0, 1u << 22},  {"n_heads", &Hyper::n_heads, 1, 4096},
      {"n_v_heads", &Hyper::n_v_heads, 1, 4096},   {"head_k", &Hyper::head_k, 1, 4096},
      {"head_v", &Hyper::head_v, 1, 8192},         {"d_conv", &Hyper::d_conv, 2, 64},
      {"d_ffn", &Hyper::d_ffn, 1, 1u << 18}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {
      {fb::LayerKind::GatedDeltaNetBlock, {gated_deltanet::kBlock}, gated_deltanet::kBlockState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = {};
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = {}, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::GatedDeltaNetParams* p = m.params_as_GatedDeltaNetParams();
    if (!p) return fail(err, Status::kCorrupt, "gated_deltanet hyper-parameters are missing");
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .n_heads = p->n_heads(),
               .n_v_heads = p->n_v_heads(),
               .head_k = p->head_k(),
               .head_v = p->head_v(),
               .d_conv = p->d_conv(),
               .d_ffn = p->d_ffn(),
               .norm_eps = p->norm_eps(),
               .tied_head = p->tied_head(),
               .neg_eigval = p->neg_eigval()};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (h->n_v_heads % h->n_heads != 0)
      return fail(err, Status::kCorrupt, "gated_deltanet n_v_heads %u is not a multiple of n_heads %u", h->n_v_heads,
                  h->n_heads);
    if (static_cast<uint64_t>(h->n_v_heads) * h->head_v * h->head_k > (1ull << 26))
      return fail(err, Status::kCorrupt, "gated_deltanet state of %u x %u x %u floats per layer is too large",
                  h->n_v_heads, h->head_v, h->head_k);
    if (!in_open(h->norm_eps, 0.f, 1.f))
      return fail(err, Status::kCorrupt, "gated_deltanet norm eps %g not in (0, 1)", static_cast<double>(h->norm_eps));
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::GatedDeltaNetParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_n_heads(h.n_heads);
    p.add_n_v_heads(h.n_v_heads);
    p.add_head_k(h.head_k);
    p.add_head_v(h.head_v);
    p.add_d_conv(h.d_conv);
    p.add_d_ffn(h.d_ffn);
    p.add_norm_eps(h.norm_eps);
    p.add_tied_head(h.tied_head);
    p.add_neg_eigval(h.neg_eigval);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
