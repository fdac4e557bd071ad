// Binding a file with an architecture's spec (arch/spec.h): the view_bytes and bind of every
// Architecture. What needs no spec type is in arch/bind.cc.
#pragma once

#include <new>

#include "arch/arch.h"

namespace rill {

// What bind leaves in model memory: the hyper-parameters and the views.
template <class S>
struct Bound {
  typename S::Hyper p;
  typename S::Globals g;
  typename S::Layer* layers;  // [n_layer]
};
template <class S>
const Bound<S>& bound(const ModelImpl& m) {
  return *static_cast<const Bound<S>*>(m.arch_data);
}

// ---- the parts that need no spec type (arch/bind.cc)

// The file's layers: exactly n_layer, each of a kind `known(kind)` accepts.
Status check_layers(const FileView& f, const char* arch, uint32_t n_layer, bool (*known)(fb::LayerKind), Error* err);
// The ends the file has: its io table against the architecture's, the tied head, standardization.
Status file_ends(const FileView& f, const char* arch, const spec::EndsSpec& es, uint32_t d_model, uint32_t vocab,
                 bool tied, spec::Ends* out, Error* err);
// Finds the entry in the file (model level or its layer), checks its storage and shape, binds its view.
Status bind_entry(const FileView& f, const spec::TensorEntry& e, Error* err);
// Refuses any tensor of `layer` (-1: the model's) whose name is not among names[0, n).
Status check_no_other(const FileView& f, const char* arch, int layer, const char* const* names, size_t n, Error* err);
// After the ends are bound: input_std must be finite and positive; sets d_input / d_output.
Status finish_ends(const FileView& f, const spec::Ends& e, ModelImpl* m, Error* err);
// One expected state tensor against the file's state layout: its slot (offset, count, type).
Status bind_state_entry(const FileView& f, const spec::StateEntry& e, StateSlot* slot, Error* err);
// The whole state layout: exactly n tensors, none overlapping, state_bytes their aligned end.
Status finish_state(const FileView& f, StateSlot* slots, uint32_t n, ModelImpl* m, Error* err);

inline constexpr size_t kMaxTensorsPerLayer = 64;

// ---- the generic parts

template <class S>
bool known_kind(fb::LayerKind k) {
  return spec::find_kind<S>(k) != nullptr;
}

// The file's hyper-parameters, checked (ranges, relations, derived sizes), and its layers.
template <class S>
Status read_hyper(const FileView& f, typename S::Hyper* h, Error* err) {
  Status s = S::read(*f.model, h, err);
  if (s == Status::kOk) s = spec::check_hyper<S>(h, err);
  if (s == Status::kOk) s = check_layers(f, S::kName, h->n_layer, known_kind<S>, err);
  return s;
}

inline auto file_kinds(const FileView& f) {
  return [layers = f.model->layers()](uint32_t i) { return layers->Get(i)->kind(); };
}

template <class S>
Status view_bytes(const FileView& f, size_t* bytes, Error* err) {
  typename S::Hyper h;
  const Status s = read_hyper<S>(f, &h, err);
  if (s != Status::kOk) return s;
  uint32_t n_state = 0;
  spec::for_each_state<S>(h, file_kinds(f), {}, [&](const spec::StateEntry&) { return ++n_state, true; });
  *bytes = align_up(sizeof(Bound<S>), kAlign) + align_up(size_t{h.n_layer} * sizeof(typename S::Layer), kAlign) +
           align_up(size_t{n_state} * sizeof(StateSlot), kAlign);
  return Status::kOk;
}

// A model whose attention keeps every token (Hyper::max_context ring slots): ModelOptions::max_context
// (m->max_context_option, 0: the file's) replaces the file's value, and the state is laid out anew for
// it (the file's layout was checked first), in file order, each tensor kAlign-aligned.
template <class S>
Status choose_context(const FileView& f, ModelImpl* m, Bound<S>* b, StateSlot* slots, uint32_t n_state, Error* err) {
  const uint32_t want = m->max_context_option;
  if (want && want != b->p.max_context) {
    for (const auto& p : S::kParams)
      if (p.field == &S::Hyper::max_context && (want < p.lo || want > p.hi))
        return fail(err, Status::kInvalidArgument, "max_context %u is outside [%llu, %llu]", want,
                    static_cast<unsigned long long>(p.lo), static_cast<unsigned long long>(p.hi));
    b->p.max_context = want;
    uint64_t off = 0;
    uint32_t i = 0;
    const spec::Targets<S> to{m, &b->g, b->layers};
    spec::for_each_state<S>(b->p, file_kinds(f), to, [&](const spec::StateEntry& t) {
      if (i == n_state) return false;  // the same entries as the file's: cannot happen
      uint64_t count = 1;
      for (uint32_t k = 0; k < t.ndim; ++k) count *= t.shape[k];
      slots[i].count = count;
      slots[i].offset = t.at->offset = off;
      off = align_up(off + slots[i++].bytes(), kAlign);
      return true;
    });
    m->state_bytes = off;
  }
  m->info.max_context = b->p.max_context;
  return Status::kOk;
}

template <class S>
Status bind(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err) {
  auto* b = new (mem) Bound<S>{};
  Status s = read_hyper<S>(f, &b->p, err);  // checked by view_bytes: cannot fail here
  if (s != Status::kOk) return s;
  const typename S::Hyper& h = b->p;
  mem += align_up(sizeof(Bound<S>), kAlign);
  b->layers = reinterpret_cast<typename S::Layer*>(mem);
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    auto* l = new (&b->layers[i]) typename S::Layer{};
    if constexpr (requires { l->kind; }) l->kind = f.model->layers()->Get(i)->kind();
  }
  auto* slots = reinterpret_cast<StateSlot*>(mem + align_up(size_t{h.n_layer} * sizeof(typename S::Layer), kAlign));
  m->arch_data = b;

  // Tensors: every one the spec lists, and nothing else, in the model and in each layer.
  spec::Ends e;
  if ((s = file_ends(f, S::kName, S::kEnds, h.d_model, h.vocab, h.tied_head, &e, err)) != Status::kOk) return s;
  const spec::Targets<S> to{m, &b->g, b->layers};
  const char* names[kMaxTensorsPerLayer];
  size_t n_names = 0;
  int layer = -1;
  auto close_layer = [&] {
    s = check_no_other(f, S::kName, layer, names, n_names, err);
    n_names = 0;
    return s == Status::kOk;
  };
  const bool all = spec::for_each_tensor<S>(h, e, file_kinds(f), to, [&](const spec::TensorEntry& t) {
    if (t.layer != layer) {  // the previous layer (or the model level) is complete
      if (!close_layer()) return false;
      layer = t.layer;
    }
    if (n_names == kMaxTensorsPerLayer) return s = fail(err, Status::kCorrupt, "too many tensors"), false;
    names[n_names++] = t.name;
    return (s = bind_entry(f, t, err)) == Status::kOk;
  });
  if (!all || !close_layer()) return s;
  if ((s = finish_ends(f, e, m, err)) != Status::kOk) return s;

  // State tensors, in file order.
  uint32_t n_state = 0;
  spec::for_each_state<S>(h, file_kinds(f), to, [&](const spec::StateEntry& t) {
    if ((s = bind_state_entry(f, t, &slots[n_state], err)) != Status::kOk) return false;
    t.at->offset = slots[n_state++].offset;
    return true;
  });
  if (s != Status::kOk || (s = finish_state(f, slots, n_state, m, err)) != Status::kOk) return s;
  if constexpr (requires { b->p.max_context; }) {
    if ((s = choose_context<S>(f, m, b, slots, n_state, err)) != Status::kOk) return s;
  }
  m->info.d_model = h.d_model;
  m->info.n_layer = h.n_layer;
  m->info.vocab_size = h.vocab;
  return Status::kOk;
}

// An architecture's scratch bytes for passes of up to max_rows rows, from its scratch table.
template <class S, const auto& kScratch>
size_t scratch_bytes(const ModelImpl& m, size_t max_rows, bool chunked) {
  return carve(kScratch, bound<S>(m).p, max_rows, nullptr, nullptr, chunked);
}

// The Architecture of spec S: the spec's binding, the scratch table's bytes, and the forward pass.
template <class S, const auto& kScratch>
constexpr Architecture architecture(void (*forward)(const Exec& x, const ModelImpl& m, const Rows& r)) {
  static_assert(overlays_valid(kScratch), "a scratch buffer's `over` must name a float buffer before it");
  return Architecture{.arch = S::kArch,
                      .name = S::kName,
                      .view_bytes = view_bytes<S>,
                      .bind = bind<S>,
                      .scratch_bytes = scratch_bytes<S, kScratch>,
                      .forward = forward};
}

}  // namespace rill
