// Mamba-2 / SSD (docs/architectures.md, Mamba-2): what a file holds, for the converter and the runtime.
//
// d = d_model, E = d_inner = H * P (H heads of head_dim P), G groups sharing B and C, N = d_state,
// K = d_conv; the conv covers x, B and C: conv_dim = E + 2GN. Per layer, state: the conv history
// [K-1, conv_dim] (oldest first) and the SSM state [H, P, N], f32.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace mamba2 {

struct Hyper {
  uint32_t d_model, n_layer, vocab, d_inner, d_state, d_conv, n_heads, head_dim, n_groups;
  float norm_eps, dt_min, dt_max;
  bool tied_head, conv_bias;
  uint32_t conv_dim() const { return d_inner + 2 * n_groups * d_state; }
  uint32_t in_rows() const { return 2 * d_inner + 2 * n_groups * d_state + n_heads; }
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView norm;       // [d] f32
  TensorView in_proj;    // [2E + 2GN + H, d]  rows: z (E), x (E), B (GN), C (GN), dt (H)
  TensorView conv_w;     // [K, conv_dim] f32
  TensorView conv_b;     // [conv_dim] f32, when conv_bias
  TensorView dt_b;       // [H] f32
  TensorView A;          // [H] f32, = -exp(A_log)
  TensorView D;          // [E] f32 (a per-head D repeated over head_dim by the converter)
  TensorView gate_norm;  // [E] f32, the gated RMSNorm's weight
  TensorView out_proj;   // [d, E]
  StateAt conv;          // [K-1, conv_dim] f32
  StateAt ssm;           // [H, P, N] f32
};
struct Globals {};

inline constexpr Dim<Hyper> d{&Hyper::d_model}, E{&Hyper::d_inner}, N{&Hyper::d_state}, K{&Hyper::d_conv},
    H{&Hyper::n_heads}, P{&Hyper::head_dim}, G{&Hyper::n_groups};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable;

inline constexpr TensorSpec<Hyper, Layer> kMixer[] = {
    {"norm", &Layer::norm, {d}, kF32},
    {"in_proj", &Layer::in_proj, {2 * E + 2 * G * N + H, d}, kQuantizable},
    {"conv_weight", &Layer::conv_w, {K, E + 2 * G * N}, kF32},
    {"conv_bias", &Layer::conv_b, {E + 2 * G * N}, kF32, if_set(&Hyper::conv_bias, "conv_bias")},
    {"dt_bias", &Layer::dt_b, {H}, kF32},
    {"A", &Layer::A, {H}, kF32},
    {"D", &Layer::D, {E}, kF32},
    {"gate_norm", &Layer::gate_norm, {E}, kF32},
    {"out_proj", &Layer::out_proj, {d, E}, kQuantizable},
};
inline constexpr StateSpec<Hyper, Layer> kMixerState[] = {
    {"conv", &Layer::conv, {K - 1, E + 2 * G * N}},
    {"ssm", &Layer::ssm, {H, P, N}},
};

}  // namespace mamba2

struct Mamba2 {
  using Hyper = mamba2::Hyper;
  using Layer = mamba2::Layer;
  using Globals = mamba2::Globals;
  static constexpr const char* kName = "mamba2";
  static constexpr Arch kArch = Arch::kMamba2;
  static constexpr fb::Arch kFileArch = fb::Arch::Mamba2;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::Mamba2Params;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kEither};
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16},   {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 0, 1u << 22},  {"d_state", &Hyper::d_state, 1, 1024},
      {"d_conv", &Hyper::d_conv, 2, 64},           {"n_heads", &Hyper::n_heads, 1, 1u << 12},
      {"head_dim", &Hyper::head_dim, 1, 1u << 12}, {"n_groups", &Hyper::n_groups, 1, 1u << 12},
      {"d_inner", &Hyper::d_inner, 1, 1u << 18}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {{fb::LayerKind::Mamba2Mixer, {mamba2::kMixer}, mamba2::kMixerState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = {};
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = {}, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::Mamba2Params* p = m.params_as_Mamba2Params();
    if (!p) return fail(err, Status::kCorrupt, "mamba2 hyper-parameters are missing");
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .d_inner = p->d_inner(),
               .d_state = p->d_state(),
               .d_conv = p->d_conv(),
               .n_heads = p->n_heads(),
               .head_dim = p->head_dim(),
               .n_groups = p->n_groups(),
               .norm_eps = p->norm_eps(),
               .dt_min = p->dt_min(),
               .dt_max = p->dt_max(),
               .tied_head = p->tied_head(),
               .conv_bias = p->conv_bias()};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (h->n_groups > h->n_heads || h->n_heads % h->n_groups != 0 ||
        static_cast<uint64_t>(h->n_heads) * h->head_dim != h->d_inner)
      return fail(err, Status::kCorrupt,
                  "mamba2 d_inner %u != n_heads %u * head_dim %u, or heads not a multiple of groups %u", h->d_inner,
                  h->n_heads, h->head_dim, h->n_groups);
    if (!in_open(h->norm_eps, 0.f, 1.f) || !(h->dt_min >= 0.f) || !(h->dt_max > h->dt_min))
      return fail(err, Status::kCorrupt, "mamba2 norm_eps %g or dt limits [%g, %g] are not sane",
                  static_cast<double>(h->norm_eps), static_cast<double>(h->dt_min), static_cast<double>(h->dt_max));
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::Mamba2ParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_d_inner(h.d_inner);
    p.add_d_state(h.d_state);
    p.add_d_conv(h.d_conv);
    p.add_n_heads(h.n_heads);
    p.add_head_dim(h.head_dim);
    p.add_n_groups(h.n_groups);
    p.add_norm_eps(h.norm_eps);
    p.add_dt_min(h.dt_min);
    p.add_dt_max(h.dt_max);
    p.add_tied_head(h.tied_head);
    p.add_conv_bias(h.conv_bias);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
