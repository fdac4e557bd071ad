// RWKV-6 "Finch" (docs/architectures.md, RWKV-6): what a file holds, for the converter and the runtime.
//
// C = d_model = H * N (H heads of head_size N), F = d_ffn, Dm the rank of the token-shift LoRA (one
// down projection for the five mixes, an up projection each), Dd the rank of the decay LoRA. The
// embedding LayerNorm (ln0) is folded into the embedding rows by the converter. Per layer, state:
// att_shift [C] (the previous LN1 output), ffn_shift [C] (the previous LN2 output), wkv [H, N, N]
// (S[h][i][j], i the value index, j the key index), f32.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace rwkv6 {

struct Hyper {
  uint32_t d_model, n_layer, vocab, head_size, n_heads, d_ffn, rank_mix, rank_decay;
  float norm_eps, gn_eps;
  bool tied_head;     // always false: RWKV-6 has its own head
  uint32_t max_rank;  // derived: the widest LoRA bottleneck (5 rank_mix or rank_decay)
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView ln1_w, ln1_b, ln2_w, ln2_b;  // [C] f32
  TensorView maa_x;                        // [C] f32: the mix the token-shift LoRA reads
  TensorView maa;                          // [5, C] f32: the static mixes of w, k, v, r, g
  TensorView maa_w1;                       // [5 Dm, C]: the token-shift LoRA's shared down projection
  TensorView maa_w2;                       // [5 C, Dm]: its five up projections, w, k, v, r, g, stacked
  TensorView decay;                        // [C] f32: the decay's bias (time_decay)
  TensorView decay_w1, decay_w2;           // decay LoRA: [Dd, C], [C, Dd]
  TensorView bonus;                        // [H, N] f32: u (time_faaaa)
  TensorView W_r, W_k, W_v, W_g, W_o;      // [C, C]
  TensorView lnx_w, lnx_b;                 // [C] f32, GroupNorm of the wkv output
  TensorView ffn_maa;                      // [2, C] f32: mixes of the key and the receptance
  TensorView ffn_key, ffn_value, ffn_r;    // [F, C], [C, F], [C, C]
  StateAt att_shift, ffn_shift;            // [C] f32
  StateAt wkv;                             // [H, N, N] f32
};
struct Globals {
  TensorView norm_f_bias;  // [C] f32: the final norm is a LayerNorm
};

inline constexpr Dim<Hyper> C{&Hyper::d_model}, H{&Hyper::n_heads}, N{&Hyper::head_size}, F{&Hyper::d_ffn},
    Dm{&Hyper::rank_mix}, Dd{&Hyper::rank_decay};
inline constexpr DClass kF32 = DClass::kF32, kFloat = DClass::kFloat, kQuantizable = DClass::kQuantizable,
                        kSensitive = DClass::kSensitive;

// The LoRAs shape the token shift and the decay: kSensitive, as RWKV-7's; maa_w2 is multiplied block by
// block (five [C, Dm] blocks), which only a float matrix allows.
inline constexpr TensorSpec<Hyper, Layer> kBlock[] = {
    {"ln1_w", &Layer::ln1_w, {C}, kF32},
    {"ln1_b", &Layer::ln1_b, {C}, kF32},
    {"ln2_w", &Layer::ln2_w, {C}, kF32},
    {"ln2_b", &Layer::ln2_b, {C}, kF32},
    {"maa_x", &Layer::maa_x, {C}, kF32},
    {"maa", &Layer::maa, {5, C}, kF32},
    {"maa_w1", &Layer::maa_w1, {5 * Dm, C}, kSensitive},
    {"maa_w2", &Layer::maa_w2, {5 * C, Dm}, kFloat},
    {"decay", &Layer::decay, {C}, kF32},
    {"decay_w1", &Layer::decay_w1, {Dd, C}, kSensitive},
    {"decay_w2", &Layer::decay_w2, {C, Dd}, kSensitive},
    {"bonus", &Layer::bonus, {H, N}, kF32},
    {"W_r", &Layer::W_r, {C, C}, kQuantizable},
    {"W_k", &Layer::W_k, {C, C}, kQuantizable},
    {"W_v", &Layer::W_v, {C, C}, kQuantizable},
    {"W_g", &Layer::W_g, {C, C}, kQuantizable},
    {"W_o", &Layer::W_o, {C, C}, kQuantizable},
    {"lnx_w", &Layer::lnx_w, {C}, kF32},
    {"lnx_b", &Layer::lnx_b, {C}, kF32},
    {"ffn_maa", &Layer::ffn_maa, {2, C}, kF32},
    {"ffn_key", &Layer::ffn_key, {F, C}, kQuantizable},
    {"ffn_value", &Layer::ffn_value, {C, F}, kQuantizable},
    {"ffn_r", &Layer::ffn_r, {C, C}, kQuantizable},
};
inline constexpr StateSpec<Hyper, Layer> kBlockState[] = {
    {"att_shift", &Layer::att_shift, {C}},
    {"ffn_shift", &Layer::ffn_shift, {C}},
    {"wkv", &Layer::wkv, {H, N, N}},
};
inline constexpr TensorSpec<Hyper, Globals> kModel[] = {
    {"norm_f_bias", &Globals::norm_f_bias, {C}, kF32},
};

}  // namespace rwkv6

struct Rwkv6 {
  using Hyper = rwkv6::Hyper;
  using Layer = rwkv6::Layer;
  using Globals = rwkv6::Globals;
  static constexpr const char* kName = "rwkv6";
  static constexpr Arch kArch = Arch::kRwkv6;
  static constexpr fb::Arch kFileArch = fb::Arch::RWKV6;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::Rwkv6Params;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kTokens};  // ln0 is folded into the embedding
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},    {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 0, 1u << 22},   {"head_size", &Hyper::head_size, 1, 1024},
      {"n_heads", &Hyper::n_heads, 1, 1u << 16},    {"d_ffn", &Hyper::d_ffn, 1, 1u << 18},
      {"rank_mix", &Hyper::rank_mix, 1, 4096},      {"rank_decay", &Hyper::rank_decay, 1, 4096}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {{fb::LayerKind::Rwkv6Block, {rwkv6::kBlock}, rwkv6::kBlockState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = rwkv6::kModel;
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = {}, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::Rwkv6Params* p = m.params_as_Rwkv6Params();
    if (!p) return fail(err, Status::kCorrupt, "rwkv6 hyper-parameters are missing");
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .head_size = p->head_size(),
               .n_heads = p->n_heads(),
               .d_ffn = p->d_ffn(),
               .rank_mix = p->rank_mix(),
               .rank_decay = p->rank_decay(),
               .norm_eps = p->norm_eps(),
               .gn_eps = p->group_norm_eps(),
               .tied_head = false,
               .max_rank = 0};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (static_cast<uint64_t>(h->n_heads) * h->head_size != h->d_model)
      return fail(err, Status::kCorrupt, "rwkv6 n_heads %u * head_size %u != d_model %u", h->n_heads, h->head_size,
                  h->d_model);
    if (!in_open(h->norm_eps, 0.f, 1.f) || !in_open(h->gn_eps, 0.f, 1.f))
      return fail(err, Status::kCorrupt, "rwkv6 norm eps %g or group norm eps %g not in (0, 1)",
                  static_cast<double>(h->norm_eps), static_cast<double>(h->gn_eps));
    h->max_rank = 5 * h->rank_mix > h->rank_decay ? 5 * h->rank_mix : h->rank_decay;
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::Rwkv6ParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_head_size(h.head_size);
    p.add_n_heads(h.n_heads);
    p.add_d_ffn(h.d_ffn);
    p.add_rank_mix(h.rank_mix);
    p.add_rank_decay(h.rank_decay);
    p.add_norm_eps(h.norm_eps);
    p.add_group_norm_eps(h.gn_eps);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
