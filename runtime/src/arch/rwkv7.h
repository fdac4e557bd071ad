// RWKV-7 "Goose" (docs/architectures.md, RWKV-7): what a file holds, for the converter and the runtime.
//
// C = d_model = H * N (H heads of head_size N), F = d_ffn, LoRA ranks Dw, Da, Dv, Dg. The embedding
// LayerNorm (ln0) is folded into the embedding rows by the converter. Per layer, state: att_shift [C]
// (the previous LN1 output), ffn_shift [C] (the previous LN2 output), wkv [H, N, N] (S[h][i][j], i the
// value index, j the key index), f32.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace rwkv7 {

struct Hyper {
  uint32_t d_model, n_layer, vocab, head_size, n_heads, d_ffn, rank_w, rank_a, rank_v, rank_g;
  float norm_eps, gn_eps;
  bool tied_head;     // always false: RWKV-7 has its own head
  uint32_t max_rank;  // derived: the widest LoRA bottleneck
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView ln1_w, ln1_b, ln2_w, ln2_b;  // [C] f32
  TensorView att_mix;                      // [6, C] f32, token-shift mix for r, w, k, v, a, g
  TensorView w0, w1, w2;                   // decay LoRA: [C], [Dw, C], [C, Dw]
  TensorView a0, a1, a2;                   // in-context learning rate LoRA: [C], [Da, C], [C, Da]
  TensorView v0, v1, v2;                   // value-residual LoRA (from layer 1 on): [C], [Dv, C], [C, Dv]
  TensorView g1, g2;                       // output gate LoRA: [Dg, C], [C, Dg]
  TensorView k_k, k_a, r_k;                // [C] f32
  TensorView W_r, W_k, W_v, W_o;           // [C, C]
  TensorView lnx_w, lnx_b;                 // [C] f32, GroupNorm of the wkv output
  TensorView ffn_mix;                      // [C] f32
  TensorView ffn_key, ffn_value;           // [F, C], [C, F]
  StateAt att_shift, ffn_shift;            // [C] f32
  StateAt wkv;                             // [H, N, N] f32
};
struct Globals {
  TensorView norm_f_bias;  // [C] f32: the final norm is a LayerNorm
};

inline constexpr Dim<Hyper> C{&Hyper::d_model}, H{&Hyper::n_heads}, N{&Hyper::head_size}, F{&Hyper::d_ffn},
    Dw{&Hyper::rank_w}, Da{&Hyper::rank_a}, Dv{&Hyper::rank_v}, Dg{&Hyper::rank_g};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable, kSensitive = DClass::kSensitive;
// Layer 0 has no value residual.
inline constexpr When<Hyper> kValueResidual = {nullptr, false, 1, "the value residual (from layer 1 on)"};

// The LoRAs shape decay, in-context rate, value residual and gate: kSensitive (llama.cpp keeps them
// unquantized too), and ~10 % of the bytes a token reads.
inline constexpr TensorSpec<Hyper, Layer> kBlock[] = {
    {"ln1_w", &Layer::ln1_w, {C}, kF32},
    {"ln1_b", &Layer::ln1_b, {C}, kF32},
    {"ln2_w", &Layer::ln2_w, {C}, kF32},
    {"ln2_b", &Layer::ln2_b, {C}, kF32},
    {"att_mix", &Layer::att_mix, {6, C}, kF32},
    {"w1", &Layer::w1, {Dw, C}, kSensitive},
    {"w2", &Layer::w2, {C, Dw}, kSensitive},
    {"w0", &Layer::w0, {C}, kF32},
    {"a1", &Layer::a1, {Da, C}, kSensitive},
    {"a2", &Layer::a2, {C, Da}, kSensitive},
    {"a0", &Layer::a0, {C}, kF32},
    {"v1", &Layer::v1, {Dv, C}, kSensitive, kValueResidual},
    {"v2", &Layer::v2, {C, Dv}, kSensitive, kValueResidual},
    {"v0", &Layer::v0, {C}, kF32, kValueResidual},
    {"g1", &Layer::g1, {Dg, C}, kSensitive},
    {"g2", &Layer::g2, {C, Dg}, kSensitive},
    {"k_k", &Layer::k_k, {C}, kF32},
    {"k_a", &Layer::k_a, {C}, kF32},
    {"r_k", &Layer::r_k, {C}, kF32},
    {"W_r", &Layer::W_r, {C, C}, kQuantizable},
    {"W_k", &Layer::W_k, {C, C}, kQuantizable},
    {"W_v", &Layer::W_v, {C, C}, kQuantizable},
    {"W_o", &Layer::W_o, {C, C}, kQuantizable},
    {"lnx_w", &Layer::lnx_w, {C}, kF32},
    {"lnx_b", &Layer::lnx_b, {C}, kF32},
    {"ffn_mix", &Layer::ffn_mix, {C}, kF32},
    {"ffn_key", &Layer::ffn_key, {F, C}, kQuantizable},
    {"ffn_value", &Layer::ffn_value, {C, F}, kQuantizable},
};
inline constexpr StateSpec<Hyper, Layer> kBlockState[] = {
    {"att_shift", &Layer::att_shift, {C}},
    {"ffn_shift", &Layer::ffn_shift, {C}},
    {"wkv", &Layer::wkv, {H, N, N}},
};
inline constexpr TensorSpec<Hyper, Globals> kModel[] = {
    {"norm_f_bias", &Globals::norm_f_bias, {C}, kF32},
};

}  // namespace rwkv7

struct Rwkv7 {
  using Hyper = rwkv7::Hyper;
  using Layer = rwkv7::Layer;
  using Globals = rwkv7::Globals;
  static constexpr const char* kName = "rwkv7";
  static constexpr Arch kArch = Arch::kRwkv7;
  static constexpr fb::Arch kFileArch = fb::Arch::RWKV7;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::Rwkv7Params;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kTokens};  // ln0 is folded into the embedding
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},    {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 0, 1u << 22},   {"head_size", &Hyper::head_size, 1, 1024},
      {"n_heads", &Hyper::n_heads, 1, 1u << 16},    {"d_ffn", &Hyper::d_ffn, 1, 1u << 18},
      {"rank_w", &Hyper::rank_w, 1, 4096},          {"rank_a", &Hyper::rank_a, 1, 4096},
      {"rank_v", &Hyper::rank_v, 1, 4096},          {"rank_g", &Hyper::rank_g, 1, 4096}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {{fb::LayerKind::Rwkv7Block, {rwkv7::kBlock}, rwkv7::kBlockState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = rwkv7::kModel;
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = {}, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::Rwkv7Params* p = m.params_as_Rwkv7Params();
    if (!p) return fail(err, Status::kCorrupt, "rwkv7 hyper-parameters are missing");
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .head_size = p->head_size(),
               .n_heads = p->n_heads(),
               .d_ffn = p->d_ffn(),
               .rank_w = p->rank_w(),
               .rank_a = p->rank_a(),
               .rank_v = p->rank_v(),
               .rank_g = p->rank_g(),
               .norm_eps = p->norm_eps(),
               .gn_eps = p->group_norm_eps(),
               .tied_head = false,
               .max_rank = 0};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (static_cast<uint64_t>(h->n_heads) * h->head_size != h->d_model)
      return fail(err, Status::kCorrupt, "rwkv7 n_heads %u * head_size %u != d_model %u", h->n_heads, h->head_size,
                  h->d_model);
    if (!in_open(h->norm_eps, 0.f, 1.f) || !in_open(h->gn_eps, 0.f, 1.f))
      return fail(err, Status::kCorrupt, "rwkv7 norm eps %g or group norm eps %g not in (0, 1)",
                  static_cast<double>(h->norm_eps), static_cast<double>(h->gn_eps));
    h->max_rank = h->rank_w;
    for (uint32_t r : {h->rank_a, h->rank_v, h->rank_g}) h->max_rank = r > h->max_rank ? r : h->max_rank;
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::Rwkv7ParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_head_size(h.head_size);
    p.add_n_heads(h.n_heads);
    p.add_d_ffn(h.d_ffn);
    p.add_rank_w(h.rank_w);
    p.add_rank_a(h.rank_a);
    p.add_rank_v(h.rank_v);
    p.add_rank_g(h.rank_g);
    p.add_norm_eps(h.norm_eps);
    p.add_group_norm_eps(h.gn_eps);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
