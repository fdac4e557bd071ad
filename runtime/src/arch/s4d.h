// S4D (docs/architectures.md, S4D; state-spaces/s4 models/s4/s4d.py): what a file holds, for the
// converter and the runtime. The converter discretizes each layer by zero-order hold, so the file holds
// Ā and C̃ and the runtime only multiplies and adds.
//
// H = d_model, M = d_state / 2 complex modes per channel. Float vectors in and out. State: per layer
// s [M, 2, H] f32 (real parts, then imaginary parts, of each mode); with pool = mean also pool.mean [H]
// and pool.count [1] after the layers'.
#pragma once

#include "arch/spec.h"

namespace rill {
namespace spec {
namespace s4d {

struct Hyper {
  uint32_t d_model, n_layer, d_state;
  bool prenorm, pool_mean;
  float norm_eps;
  uint32_t vocab;    // always 0: vector input and output
  bool tied_head;    // always false
  uint32_t modes;    // derived: d_state / 2
  bool operator==(const Hyper&) const = default;
};

struct Layer {
  TensorView A;           // [M, 2, H] f32: Ā = exp(dt A)
  TensorView C;           // [M, 2, H] f32: C̃ = C (exp(dt A) - 1) / A
  TensorView D;           // [H] f32
  TensorView out_proj;    // [2H, H] (output_linear's 1x1 conv)
  TensorView out_proj_b;  // [2H] f32
  TensorView norm_w;      // [H] f32
  TensorView norm_b;      // [H] f32
  StateAt ssm;            // [M, 2, H] f32
};
struct Globals {
  StateAt pool_mean;   // [H] f32, when pool = mean
  StateAt pool_count;  // [1] f32
};

inline constexpr Dim<Hyper> H{&Hyper::d_model}, M{&Hyper::modes};
inline constexpr DClass kF32 = DClass::kF32;

inline constexpr TensorSpec<Hyper, Layer> kBlock[] = {
    {"A", &Layer::A, {M, 2, H}, kF32},
    {"C", &Layer::C, {M, 2, H}, kF32},
    {"D", &Layer::D, {H}, kF32},
    {"out_proj", &Layer::out_proj, {2 * H, H}, DClass::kQuantizable},
    {"out_proj_bias", &Layer::out_proj_b, {2 * H}, kF32},
    {"norm_weight", &Layer::norm_w, {H}, kF32},
    {"norm_bias", &Layer::norm_b, {H}, kF32},
};
inline constexpr StateSpec<Hyper, Layer> kBlockState[] = {{"ssm", &Layer::ssm, {M, 2, H}}};
inline constexpr StateSpec<Hyper, Globals> kPool[] = {
    {"pool.mean", &Globals::pool_mean, {H}, StateType::kF32, nullptr, if_set(&Hyper::pool_mean, "pool = mean")},
    {"pool.count", &Globals::pool_count, {1}, StateType::kF32, nullptr, if_set(&Hyper::pool_mean, "pool = mean")},
};

}  // namespace s4d

struct S4d {
  using Hyper = s4d::Hyper;
  using Layer = s4d::Layer;
  using Globals = s4d::Globals;
  static constexpr const char* kName = "s4d";
  static constexpr Arch kArch = Arch::kS4d;
  static constexpr fb::Arch kFileArch = fb::Arch::S4D;
  static constexpr fb::ArchParams kFileParams = fb::ArchParams::S4DParams;
  static constexpr EndsSpec kEnds = {.norm_f = false, .io = Io::kVectors};
  static constexpr Param<Hyper> kParams[] = {{"d_model", &Hyper::d_model, 1, 1u << 16},
                                             {"n_layer", &Hyper::n_layer, 1, 1024},
                                             {"d_state", &Hyper::d_state, 2, 8192}};
  static constexpr KindSpec<Hyper, Layer> kKinds[] = {{fb::LayerKind::S4DBlock, {s4d::kBlock}, s4d::kBlockState}};
  static constexpr Span<TensorSpec<Hyper, Globals>> kModelTensors = {};
  static constexpr Span<StateSpec<Hyper, Globals>> kStateFirst = {}, kStateLast = s4d::kPool;

  static Status read(const fb::Model& m, Hyper* h, Error* err) {
    const fb::S4DParams* p = m.params_as_S4DParams();
    if (!p) return fail(err, Status::kCorrupt, "s4d hyper-parameters are missing");
    if (static_cast<unsigned>(p->pool()) > 1)
      return fail(err, Status::kUnsupported, "s4d pool %u is not known to this reader", static_cast<unsigned>(p->pool()));
    *h = Hyper{.d_model = p->d_model(),
               .n_layer = p->n_layer(),
               .d_state = p->d_state(),
               .prenorm = p->prenorm(),
               .pool_mean = p->pool() == fb::Pool::Mean,
               .norm_eps = p->norm_eps(),
               .vocab = 0,
               .tied_head = false,
               .modes = 0};
    return Status::kOk;
  }
  static Status finish(Hyper* h, Error* err) {
    if (!in_open(h->norm_eps, 0.f, 1.f))
      return fail(err, Status::kCorrupt, "s4d norm_eps = %g is not in (0, 1)", static_cast<double>(h->norm_eps));
    h->modes = h->d_state / 2;  // the authors' N // 2 complex modes (conjugate pairs)
    return Status::kOk;
  }
  static flatbuffers::Offset<void> write(flatbuffers::FlatBufferBuilder& b, const Hyper& h) {
    fb::S4DParamsBuilder p(b);
    p.add_d_model(h.d_model);
    p.add_n_layer(h.n_layer);
    p.add_d_state(h.d_state);
    p.add_prenorm(h.prenorm);
    p.add_pool(h.pool_mean ? fb::Pool::Mean : fb::Pool::None);
    p.add_norm_eps(h.norm_eps);
    return p.Finish().Union();
  }
};

}  // namespace spec
}  // namespace rill
