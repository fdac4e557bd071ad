// Mamba-1 (docs/architectures.md, Mamba-1): what a file holds, for the converter and the runtime.
//
// d = d_model, E = d_inner, N = d_state, K = d_conv, R = dt_rank, V = vocab. Per layer, state: the conv
// history [K-1, E] (oldest first) and the SSM state [N, E] (state-dim-major, so channels are contiguous
// and the scan vectorises across them), f32.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace mamba1 {

struct Hyper {
  uint32_t d_model, n_layer, vocab, d_inner, d_state, d_conv, dt_rank;
  float norm_eps;
  bool tied_head, in_proj_bias, out_proj_bias, conv_bias;
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView norm;        // [d] f32
  TensorView in_proj;     // [2E, d]   rows 0..E-1 = x, E..2E-1 = z
  TensorView in_proj_b;   // [2E] f32, when in_proj_bias
  TensorView conv_w;      // [K, E] f32 (the checkpoint's [E, 1, K], tap-major)
  TensorView conv_b;      // [E] f32, when conv_bias
  TensorView x_proj;      // [R + 2N, E] rows: dt_low, B, C
  TensorView dt_proj;     // [E, R]
  TensorView dt_b;        // [E] f32
  TensorView A;           // [N, E] f32, = -exp(A_log) transposed (the converter computes it)
  TensorView D;           // [E] f32
  TensorView out_proj;    // [d, E]
  TensorView out_proj_b;  // [d] f32, when out_proj_bias
  StateAt conv;           // [K-1, E] f32
  StateAt ssm;            // [N, E] f32
};
struct Globals {};

inline constexpr Dim<Hyper> d{&Hyper::d_model}, E{&Hyper::d_inner}, N{&Hyper::d_state}, K{&Hyper::d_conv},
    R{&Hyper::dt_rank};
inline constexpr DClass kF32 = DClass::kF32, kQuantizable = DClass::kQuantizable, kSensitive = DClass::kSensitive;

inline constexpr TensorSpec<Hyper, Layer> kMixer[] = {
    {"norm", &Layer::norm, {d}, kF32},
    {"in_proj", &Layer::in_proj, {2 * E, d}, kQuantizable},
    {"in_proj_bias", &Layer::in_proj_b, {2 * E}, kF32, if_set(&Hyper::in_proj_bias, "in_proj_bias")},
    {"conv_weight", &Layer::conv_w, {K, E}, kF32},
    {"conv_bias", &Layer::conv_b, {E}, kF32, if_set(&Hyper::conv_bias, "conv_bias")},
    {"x_proj", &Layer::x_proj, {R + 2 * N, E}, kSensitive},  // dt, B and C: the dynamics
    {"dt_proj", &Layer::dt_proj, {E, R}, kSensitive},
    {"dt_bias", &Layer::dt_b, {E}, kF32},
    {"A", &Layer::A, {N, E}, kF32},
    {"D", &Layer::D, {E}, kF32},
    {"out_proj", &Layer::out_proj, {d, E}, kQuantizable},
    {"out_proj_bias", &Layer::out_proj_b, {d}, kF32, if_set(&Hyper::out_proj_bias, "out_proj_bias")},
};
inline constexpr StateSpec<Hyper, Layer> kMixerState[] = {
    {"conv", &Layer::conv, {K - 1, E}},
    {"ssm", &Layer::ssm, {N, E}},
};

}  // namespace mamba1

struct Mamba1 {
  using Hyper = mamba1::Hyper;
  using Layer = mamba1::Layer;
  using Globals = mamba1::Globals;
  static constexpr const char* kName = "mamba1";
  static constexpr Arch kArch = Arch::kMamba1;
  static constexpr fb::Arch kFileArch = fb::Arch::Mamba1;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::Mamba1Params;
  static constexpr EndsSpec kEnds = {.norm_f = true, .io = Io::kEither};
  static constexpr Param<Hyper> kParams[] = {
      {"d_model", &Hyper::d_model, 1, 1u << 16}, {"n_layer", &Hyper::n_layer, 1, 1024},
      {"vocab_size", &Hyper::vocab, 0, 1u << 22}, {"d_inner", &Hyper::d_inner, 1, 1u << 18},
      {"d_state", &Hyper::d_state, 1, 1024},     {"d_conv", &Hyper::d_conv, 2, 64},
      {"dt_rank", &Hyper::dt_rank, 1, 1u << 16}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {{fb::LayerKind::Mamba1Mixer, {mamba1::kMixer}, mamba1::kMixerState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = {};
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = {}, kStateLast = {};

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::Mamba1Params* p = m.params_as_Mamba1Params();
    if (!p) return fail(err, Status::kCorrupt, "mamba1 hyper-parameters are missing");
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .vocab = p->vocab_size(),
               .d_inner = p->d_inner(),
               .d_state = p->d_state(),
               .d_conv = p->d_conv(),
               .dt_rank = p->dt_rank(),
               .norm_eps = p->norm_eps(),
               .tied_head = p->tied_head(),
               .in_proj_bias = p->in_proj_bias(),
               .out_proj_bias = p->out_proj_bias(),
               .conv_bias = p->conv_bias()};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (!in_open(h->norm_eps, 0.f, 1.f))
      return fail(err, Status::kCorrupt, "mamba1 norm_eps = %g is not in (0, 1)", static_cast<double>(h->norm_eps));
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::Mamba1ParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_vocab_size(h.vocab);
    p.add_d_inner(h.d_inner);
    p.add_d_state(h.d_state);
    p.add_d_conv(h.d_conv);
    p.add_dt_rank(h.dt_rank);
    p.add_norm_eps(h.norm_eps);
    p.add_tied_head(h.tied_head);
    p.add_in_proj_bias(h.in_proj_bias);
    p.add_out_proj_bias(h.out_proj_bias);
    p.add_conv_bias(h.conv_bias);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
