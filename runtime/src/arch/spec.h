// Architecture specs: what a rill file of each architecture holds, declared once. The converter
// writes files from the spec and the runtime binds them with it, so the two cannot disagree about a
// tensor's name, shape or storage.
//
// An architecture's spec (arch/<arch>.h) is a struct with:
//   Hyper          its hyper-parameters: uint32_t sizes (the names shapes are written in), floats,
//                  flags, and sizes derived from the others (filled by finish()); every Hyper has
//                  d_model, n_layer, vocab and tied_head
//   Layer          where the runtime keeps one layer's views: a TensorView per tensor and a StateAt per
//                  state tensor, of every layer kind (a layer uses those of its own kind); a member
//                  `fb::LayerKind kind`, where it has one, is set to the layer's kind
//   Globals        the same for the model's own tensors and state beyond the common ends (below)
//   kName, kArch, kFileArch, kFileParams, kEnds
//   kParams[]      each size with its range: {"d_model", &Hyper::d_model, 1, 1u << 16}
//   kKinds[]       per layer kind: its tensors and its state tensors
//   kModelTensors, kStateFirst, kStateLast: the model's own tensors, and state before / after the layers'
//   read()         the file's Params table into Hyper
//   finish()       relations between hyper-parameters, float ranges; derived sizes
//   write()        Hyper into the file's Params table (the converter), field by field by name
// for_each_tensor() and for_each_state() below expand a spec into the exact list of a file's tensors
// and state tensors; arch/bind.h binds them, converter/arch_common.h plans them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "core/model_impl.h"
#include "core/tensor.h"
#include "rill_generated.h"

namespace rill {
namespace spec {

// How a tensor may be stored.
enum class DClass : uint8_t {
  kF32,          // f32 only: vectors, norms, conv taps, SSM parameters, a vector model's ends
  kFloat,        // a float matrix, f32 or f16, never quantized (the runtime multiplies it only in float)
  kQuantizable,  // a matrix in the model's dtype: f32, f16, int8 or int4
  kSensitive,    // as kQuantizable, but it shapes the recurrence's dynamics: quantized models keep it
                 // f16 unless `rill convert --quantize` names it
};
const char* dclass_name(DClass c);

// A list of a spec's entries (a view of a constexpr array).
template <class T>
struct Span {
  const T* p = nullptr;
  size_t n = 0;
  constexpr Span() = default;
  template <size_t N>
  constexpr Span(const T (&a)[N]) : p(a), n(N) {}  // NOLINT: tables list arrays by name
  constexpr const T* begin() const { return p; }
  constexpr const T* end() const { return p + n; }
};

// One dimension of a shape: a constant plus up to three terms k * a (* b), a and b hyper-parameters.
// Written as the math: {2 * E + 2 * G * N + H, d}, {K - 1, E}, {6, C}.
template <class H>
struct Dim {
  struct Term {
    int64_t k = 0;
    uint32_t H::*a = nullptr;
    uint32_t H::*b = nullptr;  // null: k * a
  };
  int64_t c = 0;
  Term t[3] = {};
  uint8_t n = 0;
  constexpr Dim() = default;
  constexpr Dim(int64_t v) : c(v) {}  // NOLINT: a constant dimension
  constexpr Dim(uint32_t H::*f) : n(1) { t[0] = Term{1, f, nullptr}; }  // NOLINT: a hyper-parameter
  constexpr bool empty() const { return n == 0 && c == 0; }
  // The size for these hyper-parameters (checked ranges keep every term far from overflow).
  constexpr uint64_t operator()(const H& h) const {
    int64_t v = c;
    for (uint8_t i = 0; i < n; ++i) v += t[i].k * static_cast<int64_t>(h.*t[i].a) * (t[i].b ? h.*t[i].b : 1);
    return v < 0 ? 0 : static_cast<uint64_t>(v);
  }
};
template <class H>
inline constexpr Dim<H> operator+(Dim<H> a, const Dim<H>& b) {
  a.c += b.c;
  for (uint8_t i = 0; i < b.n; ++i) a.t[a.n++] = b.t[i];  // a fourth term is out of bounds: does not compile
  return a;
}
template <class H>
inline constexpr Dim<H> operator*(int64_t k, Dim<H> a) {
  a.c *= k;
  for (uint8_t i = 0; i < a.n; ++i) a.t[i].k *= k;
  return a;
}
// Not constexpr and never defined: a shape that reaches it does not compile (spec tables are constexpr).
void dim_product_takes_two_sizes();
template <class H>
inline constexpr Dim<H> operator*(const Dim<H>& a, const Dim<H>& b) {  // a product of two hyper-parameters
  if (a.n != 1 || b.n != 1 || a.c || b.c || a.t[0].b || b.t[0].b) dim_product_takes_two_sizes();
  Dim<H> p;
  p.n = 1;
  p.t[0] = typename Dim<H>::Term{a.t[0].k * b.t[0].k, a.t[0].a, b.t[0].a};
  return p;
}
template <class H>
inline constexpr Dim<H> operator-(Dim<H> a, int64_t v) {
  a.c -= v;
  return a;
}

// Up to three dimensions, outermost first.
template <class H>
struct Shape {
  Dim<H> d[3];
  constexpr uint32_t ndim() const { return d[2].empty() ? (d[1].empty() ? (d[0].empty() ? 0 : 1) : 2) : 3; }
};

// When an entry is present: always (the default); only while a flag is set (or clear); only from a
// given layer on. `what` names the condition in messages.
template <class H>
struct When {
  bool H::*flag = nullptr;
  bool clear = false;
  uint32_t from_layer = 0;
  const char* what = nullptr;
  constexpr bool operator()(const H& h, uint32_t layer) const {
    return layer >= from_layer && (!flag || (h.*flag) != clear);
  }
};
template <class H>
inline constexpr When<H> if_set(bool H::*flag, const char* what) {
  return When<H>{flag, false, 0, what};
}
template <class H>
inline constexpr When<H> if_clear(bool H::*flag, const char* what) {
  return When<H>{flag, true, 0, what};
}

// Where the runtime finds a state tensor in a session's state block.
struct StateAt {
  uint64_t offset = 0;
};

// A tensor: its name in the file (relative to its layer), where the runtime binds it (O: Layer or
// Globals), its shape and storage, and when it is present.
template <class H, class O>
struct TensorSpec {
  const char* name;
  TensorView O::*view;
  Shape<H> shape;
  DClass dclass;
  When<H> when = {};
};

// A state tensor: its name (per layer: "conv" is layers.<i>.conv), where the runtime records its
// offset, its shape and element type (f16 instead of f32 while `f16_if` is set), and when present.
template <class H, class O>
struct StateSpec {
  const char* name;
  StateAt O::*at;
  Shape<H> shape;
  StateType type = StateType::kF32;
  bool H::*f16_if = nullptr;
  When<H> when = {};
};

// One kind of layer: the file's LayerKind, its tensors (in up to two groups, e.g. a mixer and an MLP
// every kind shares) and its state tensors.
template <class H, class L>
struct KindSpec {
  fb::LayerKind kind;
  Span<TensorSpec<H, L>> tensors[2];
  Span<StateSpec<H, L>> state;
};

// A size with its range, checked before anything is sized from it.
template <class H>
struct Param {
  const char* name;
  uint32_t H::*field;
  uint64_t lo, hi;
};

// ---- the ends every model has

// Token ids in and logits out (embedding [V, d]; head [V, d] unless tied to the embedding), or float
// vectors in and out (a sensor model: encoder [d, d_input] + encoder_bias, decoder [d_output, d] +
// decoder_bias, optionally input_mean / input_std [d_input] standardizing the input); and a final norm
// weight norm_f [d] where the architecture has one.
enum class Io : uint8_t { kTokens, kVectors, kEither };
struct EndsSpec {
  bool norm_f;
  Io io;
};
struct Ends {
  uint32_t d_model = 0, vocab = 0, d_input = 0, d_output = 0;
  bool norm_f = false, tokens = false, untied = false, vectors = false, standardized = false;
};
namespace ends {
inline constexpr Dim<Ends> d{&Ends::d_model}, V{&Ends::vocab}, din{&Ends::d_input}, dout{&Ends::d_output};
inline constexpr TensorSpec<Ends, ModelImpl> kTensors[] = {
    {"norm_f", &ModelImpl::norm_f, {d}, DClass::kF32, if_set(&Ends::norm_f, "norm_f")},
    {"embedding", &ModelImpl::embed, {V, d}, DClass::kQuantizable, if_set(&Ends::tokens, "token input")},
    {"head", &ModelImpl::head, {V, d}, DClass::kQuantizable, if_set(&Ends::untied, "an untied head")},
    {"encoder", &ModelImpl::embed, {d, din}, DClass::kF32, if_set(&Ends::vectors, "vector input")},
    {"encoder_bias", &ModelImpl::embed_b, {d}, DClass::kF32, if_set(&Ends::vectors, "vector input")},
    {"decoder", &ModelImpl::head, {dout, d}, DClass::kF32, if_set(&Ends::vectors, "vector output")},
    {"decoder_bias", &ModelImpl::head_b, {dout}, DClass::kF32, if_set(&Ends::vectors, "vector output")},
    {"input_mean", &ModelImpl::in_mean, {din}, DClass::kF32, if_set(&Ends::standardized, "input standardization")},
    {"input_std", &ModelImpl::in_std, {din}, DClass::kF32, if_set(&Ends::standardized, "input standardization")},
};
}  // namespace ends

// ---- expanding a spec

// One tensor of a file, as the spec expands it.
struct TensorEntry {
  int layer;         // -1: the model's
  const char* name;  // as in the file: "in_proj" inside its layer, "embedding"
  uint64_t shape[3];
  uint32_t ndim;
  DClass dclass;
  TensorView* view;  // where the runtime binds it (null when expanding without targets)
};
// One state tensor of a file, in file order.
struct StateEntry {
  int layer;      // -1: the model's
  char name[48];  // the full name: "layers.3.conv", "position"
  uint64_t shape[3];
  uint32_t ndim;
  StateType type;
  StateAt* at;  // where the runtime records its offset (null without targets)
};

// Where for_each_* point the entries' view and at (all null: names and shapes only).
template <class S>
struct Targets {
  ModelImpl* model = nullptr;
  typename S::Globals* globals = nullptr;
  typename S::Layer* layers = nullptr;  // [n_layer]
};

// The kind spec of a file's layer kind, or null if the architecture has no such layer.
template <class S>
const KindSpec<typename S::Hyper, typename S::Layer>* find_kind(fb::LayerKind k) {
  for (const auto& ks : S::kKinds)
    if (ks.kind == k) return &ks;
  return nullptr;
}

template <class H, class O>
TensorEntry tensor_entry(const TensorSpec<H, O>& t, const H& h, int layer, O* target) {
  TensorEntry e{layer, t.name, {0, 0, 0}, t.shape.ndim(), t.dclass, target ? &(target->*t.view) : nullptr};
  for (uint32_t i = 0; i < e.ndim; ++i) e.shape[i] = t.shape.d[i](h);
  return e;
}

template <class H, class O>
StateEntry state_entry(const StateSpec<H, O>& t, const H& h, int layer, O* target) {
  StateEntry e{layer, {0}, {0, 0, 0}, t.shape.ndim(), t.f16_if && h.*t.f16_if ? StateType::kF16 : t.type,
               target ? &(target->*t.at) : nullptr};
  if (layer < 0) std::snprintf(e.name, sizeof e.name, "%s", t.name);
  else std::snprintf(e.name, sizeof e.name, "layers.%d.%s", layer, t.name);
  for (uint32_t i = 0; i < e.ndim; ++i) e.shape[i] = t.shape.d[i](h);
  return e;
}

// Calls fn(const TensorEntry&) for every tensor the file holds: the ends and the model's own (layer
// -1), then each layer's; kind_of(i) is layer i's fb::LayerKind. Stops, returning false, when fn does
// or when a layer's kind is not one of the spec's.
template <class S, class KindOf, class Fn>
bool for_each_tensor(const typename S::Hyper& h, const Ends& e, KindOf kind_of, const Targets<S>& to, Fn&& fn) {
  for (const auto& t : ends::kTensors)
    if (t.when(e, 0) && !fn(tensor_entry(t, e, -1, to.model))) return false;
  for (const auto& t : S::kModelTensors)
    if (t.when(h, 0) && !fn(tensor_entry(t, h, -1, to.globals))) return false;
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    const auto* ks = find_kind<S>(kind_of(i));
    if (!ks) return false;
    for (const auto& group : ks->tensors)
      for (const auto& t : group)
        if (t.when(h, i) && !fn(tensor_entry(t, h, static_cast<int>(i), to.layers ? &to.layers[i] : nullptr)))
          return false;
  }
  return true;
}

// Calls fn(const StateEntry&) for every state tensor, in file order: kStateFirst, each layer's,
// kStateLast. Stops as for_each_tensor does.
template <class S, class KindOf, class Fn>
bool for_each_state(const typename S::Hyper& h, KindOf kind_of, const Targets<S>& to, Fn&& fn) {
  for (const auto& t : S::kStateFirst)
    if (t.when(h, 0) && !fn(state_entry(t, h, -1, to.globals))) return false;
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    const auto* ks = find_kind<S>(kind_of(i));
    if (!ks) return false;
    for (const auto& t : ks->state)
      if (t.when(h, i) && !fn(state_entry(t, h, static_cast<int>(i), to.layers ? &to.layers[i] : nullptr)))
        return false;
  }
  for (const auto& t : S::kStateLast)
    if (t.when(h, 0) && !fn(state_entry(t, h, -1, to.globals))) return false;
  return true;
}

// The hyper-parameters' ranges (kParams), then the spec's relations and derived sizes (finish).
// kCorrupt naming the first one out of range.
template <class S>
Status check_hyper(typename S::Hyper* h, Error* err) {
  for (const auto& p : S::kParams) {
    const uint64_t v = h->*p.field;
    if (v < p.lo || v > p.hi)
      return fail(err, Status::kCorrupt, "%s %s = %llu is outside [%llu, %llu]", S::kName, p.name,
                  static_cast<unsigned long long>(v), static_cast<unsigned long long>(p.lo),
                  static_cast<unsigned long long>(p.hi));
  }
  return S::finish(h, err);
}

// A float hyper-parameter in (lo, hi) (NaN fails).
inline bool in_open(float v, float lo, float hi) { return v > lo && v < hi; }

}  // namespace spec
}  // namespace rill
