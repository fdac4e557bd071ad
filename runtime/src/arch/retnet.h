// RetNet, multi-scale retention (docs/architectures.md, RetNet; flash-linear-attention's
// RetNetForCausalLM): what a file holds, for the converter and the runtime.
//
// d = d_model; H heads of K keys and V values; Kc the short convolution's width (when the config turns
// it on); F the MLP's width. Every layer is a pre-norm block, retention then a SwiGLU MLP. The heads'
// fixed decays gamma [H] are a model tensor (fla's 1 − 2^(−5−h), written by the converter). State:
// `position` [1] i64 first (tokens seen: the rotary position), then per layer the conv history
// [Kc-1, 2HK + HV] (with the short convolution) and the matrix state [H, V, K], f32.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace retnet {

struct Hyper {
  uint32_t d_model, n_layer, vocab, n_heads, head_k, head_v, d_conv, d_ffn;
  float norm_eps, rope_theta;
  bool tied_head, short_conv;
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView attn_norm;  // [d] f32
  TensorView in_proj;    // [2HK + HV, d]  rows: q (HK), k (HK), v (HV)
  TensorView conv_w;     // [Kc, 2HK + HV] f32, with the short convolution
  TensorView g_proj;     // [HV, d] the output gate
  TensorView o_norm;     // [V] f32
  TensorView out_proj;   // [d, HV]
  TensorView mlp_norm;   // [d] f32
  TensorView gate, up;   // [F, d]
  TensorView down;       // [d, F]
  StateAt conv;          // [Kc-1, 2HK + HV] f32, with the short convolution
  StateAt wkv;           // [H, V, K] f32
};
struct Globals {
  TensorView gamma;  // [H] f32
  StateAt position;  // [1] i64
};

inline constexpr Dim<Hyper> d{&Hyper::d_model}, H{&Hyper::n_heads}, K{&Hyper::head_k}, V{&Hyper::head_v},
    Kc{&Hyper::d_conv}, F{&Hyper::d_ffn};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable;
inline constexpr When<Hyper> kConv = if_set(&Hyper::short_conv, "use_short_conv");

inline constexpr TensorSpec<Hyper, Layer> kBlock[] = {
    {"attn_norm", &Layer::attn_norm, {d}, kF32},
    {"in_proj", &Layer::in_proj, {2 * H * K + H * V, d}, kQuantizable},
    {"conv_weight", &Layer::conv_w, {Kc, 2 * H * K + H * V}, kF32, kConv},
    {"g_proj", &Layer::g_proj, {H * V, d}, kQuantizable},
    {"o_norm", &Layer::o_norm, {V}, kF32},
    {"out_proj", &Layer::out_proj, {d, H * V}, kQuantizable},
    {"mlp_norm", &Layer::mlp_norm, {d}, kF32},
    {"gate", &Layer::gate, {F, d}, kQuantizable},
    {"up", &Layer::up, {F, d}, kQuantizable},
    {"down", &Layer::down, {d, F}, kQuantizable},
};
inline constexpr StateSpec<Hyper, Layer> kBlockState[] = {
    {"conv", &Layer::conv, {Kc - 1, 2 * H * K + H * V}, StateType::kF32, nullptr, kConv},
    {"wkv", &Layer::wkv, {H, V, K}},
};
inline constexpr TensorSpec<Hyper, Globals> kModel[] = {{"gamma", &Globals::gamma, {H}, kF32}};
inline constexpr StateSpec<Hyper, Globals> kPosition[] = {{"position", &Globals::position, {1}, StateType::kI64}};

}  // namespace retnet

struct RetNet {
  using Hyper = retnet::Hyper;
  using Layer = retnet::Layer;
  using Globals = retnet::Globals;
  static constexpr const char* kName = "retnet";
  static constexpr Arch kArch = Arch::kRetNet;
  static constexpr fb::Arch kFileArch = fb::Arch::RetNet;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::RetNetParams;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kTokens};
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},  {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 0, 1u << 22}, {"n_heads", &Hyper::n_heads, 1, 4096},
      {"head_k", &Hyper::head_k, 2, 4096},        {"head_v", &Hyper::head_v, 1, 8192},
      {"d_conv", &Hyper::d_conv, 0, 64},          {"d_ffn", &Hyper::d_ffn, 1, 1u << 18}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {{fb::LayerKind::RetNetBlock, {retnet::kBlock}, retnet::kBlockState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = retnet::kModel;
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = retnet::kPosition, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::RetNetParams* p = m.params_as_RetNetParams();
    if (!p) return fail(err, Status::kCorrupt, "retnet hyper-parameters are missing");
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .n_heads = p->n_heads(),
               .head_k = p->head_k(),
               .head_v = p->head_v(),
               .d_conv = p->d_conv(),
               .d_ffn = p->d_ffn(),
               .norm_eps = p->norm_eps(),
               .rope_theta = p->rope_theta(),
               .tied_head = p->tied_head(),
               .short_conv = p->d_conv() != 0};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if ((h->d_conv != 0) != h->short_conv || h->d_conv == 1)
      return fail(err, Status::kCorrupt, "retnet conv width %u is neither 0 (no short convolution) nor at least 2",
                  h->d_conv);
    if (h->head_k % 2 != 0) return fail(err, Status::kCorrupt, "retnet head_k %u is odd (the rotary pairs channels)", h->head_k);
    if (static_cast<uint64_t>(h->n_heads) * h->head_v * h->head_k > (1ull << 26))
      return fail(err, Status::kCorrupt, "retnet state of %u x %u x %u floats per layer is too large", h->n_heads,
                  h->head_v, h->head_k);
    if (!in_open(h->norm_eps, 0.f, 1.f) || !in_open(h->rope_theta, 1.f, 1e9f))
      return fail(err, Status::kCorrupt, "retnet norm eps %g or rope theta %g out of range",
                  static_cast<double>(h->norm_eps), static_cast<double>(h->rope_theta));
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::RetNetParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_n_heads(h.n_heads);
    p.add_head_k(h.head_k);
    p.add_head_v(h.head_v);
    p.add_d_conv(h.d_conv);
    p.add_d_ffn(h.d_ffn);
    p.add_norm_eps(h.norm_eps);
    p.add_rope_theta(h.rope_theta);
    p.add_tied_head(h.tied_head);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
