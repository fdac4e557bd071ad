// The parts of binding a file that need no spec type (arch/bind.h).
#include "arch/bind.h"

#include <cmath>
#include <cstring>

namespace rill {

namespace {

const flatbuffers::Vector<flatbuffers::Offset<fb::Tensor>>* tensors_of(const FileView& f, int layer) {
  return layer < 0 ? f.model->tensors() : f.model->layers()->Get(static_cast<flatbuffers::uoffset_t>(layer))->tensors();
}

void full_name(int layer, const char* name, char* out, size_t cap) {
  if (layer < 0) std::snprintf(out, cap, "%s", name);
  else std::snprintf(out, cap, "layers.%d.%s", layer, name);
}

}  // namespace

const char* spec::dclass_name(DClass c) {
  switch (c) {
    case DClass::kF32: return "f32";
    case DClass::kFloat: return "f32 or f16";
    case DClass::kQuantizable: return "f32, f16, int8 or int4";
    case DClass::kSensitive: return "f32, f16, int8 or int4";
  }
  return "?";
}

Status check_layers(const FileView& f, const char* arch, uint32_t n_layer, bool (*known)(fb::LayerKind), Error* err) {
  const auto* layers = f.model->layers();
  const uint32_t have = layers ? layers->size() : 0u;
  if (have != n_layer) return fail(err, Status::kCorrupt, "file has %u layers, n_layer is %u", have, n_layer);
  for (uint32_t i = 0; i < n_layer; ++i) {
    const fb::LayerKind k = layers->Get(i)->kind();
    if (!known(k))
      return fail(err, Status::kCorrupt, "layer %u has kind %u (%s), which a %s model does not have", i,
                  static_cast<unsigned>(k), fb::EnumNameLayerKind(k), arch);
  }
  return Status::kOk;
}

Status file_ends(const FileView& f, const char* arch, const spec::EndsSpec& es, uint32_t d_model, uint32_t vocab,
                 bool tied, spec::Ends* out, Error* err) {
  const fb::Io* io = f.model->io();
  if (io && (static_cast<unsigned>(io->input()) > 1 || static_cast<unsigned>(io->output()) > 1))
    return fail(err, Status::kUnsupported, "input or output kind %u/%u is not known to this reader",
                static_cast<unsigned>(io->input()), static_cast<unsigned>(io->output()));
  const bool vin = io && io->input() == fb::IoKind::Vector, vout = io && io->output() == fb::IoKind::Vector;
  if (vin != vout) return fail(err, Status::kUnsupported, "mixed token and vector input/output is not supported");
  if (vin && es.io == spec::Io::kTokens)
    return fail(err, Status::kUnsupported, "%s takes token ids: vector input and output are not supported", arch);
  if (!vin && es.io == spec::Io::kVectors)
    return fail(err, Status::kCorrupt, "%s takes and gives float vectors: the file's io table must say so", arch);
  if (vin && vocab != 0)
    return fail(err, Status::kCorrupt, "a model with vector input or output has vocab_size %u, 0 expected", vocab);
  if (!vin && vocab == 0) return fail(err, Status::kCorrupt, "vocab_size is 0");
  if (vin && tied) return fail(err, Status::kCorrupt, "a vector model cannot tie its head to an embedding");
  const uint64_t din = vin ? io->d_input() : 0, dout = vin ? io->d_output() : vocab;
  if (vin && (din < 1 || din > (1u << 16) || dout < 1 || dout > (1u << 16)))
    return fail(err, Status::kCorrupt, "d_input %llu or d_output %llu is outside [1, 65536]",
                static_cast<unsigned long long>(din), static_cast<unsigned long long>(dout));
  const auto* top = f.model->tensors();
  spec::Ends e;
  e.d_model = d_model;
  e.vocab = vocab;
  e.d_input = static_cast<uint32_t>(din);
  e.d_output = static_cast<uint32_t>(dout);
  e.norm_f = es.norm_f;
  e.tokens = !vin;
  e.untied = !vin && !tied;
  e.vectors = vin;
  e.standardized = vin && (find_tensor(top, "input_mean") || find_tensor(top, "input_std"));
  *out = e;
  return Status::kOk;
}

Status bind_entry(const FileView& f, const spec::TensorEntry& e, Error* err) {
  static constexpr DType kF32[] = {DType::kF32}, kFloat[] = {DType::kF32, DType::kF16},
                         kAny[] = {DType::kF32, DType::kF16, DType::kI8, DType::kI4};
  const DType* dtypes = kAny;
  size_t n = 4;
  if (e.dclass == spec::DClass::kF32) dtypes = kF32, n = 1;
  else if (e.dclass == spec::DClass::kFloat) dtypes = kFloat, n = 2;
  char what[96];
  full_name(e.layer, e.name, what, sizeof what);
  return bind_tensor(f, find_tensor(tensors_of(f, e.layer), e.name), what, e.shape, e.ndim, dtypes, n, e.view, err);
}

Status check_no_other(const FileView& f, const char* arch, int layer, const char* const* names, size_t n, Error* err) {
  const auto* v = tensors_of(f, layer);
  const size_t have = v ? v->size() : 0;
  for (size_t i = 0; i < have; ++i) {
    const fb::Tensor* t = v->Get(static_cast<flatbuffers::uoffset_t>(i));
    const char* name = t->name() ? t->name()->c_str() : "";
    bool listed = false;
    for (size_t k = 0; k < n && !listed; ++k) listed = std::strcmp(name, names[k]) == 0;
    if (!listed) {
      char what[96];
      full_name(layer, name, what, sizeof what);
      return fail(err, Status::kCorrupt, "tensor %s: a %s model with these hyper-parameters has no such tensor", what,
                  arch);
    }
  }
  if (have != n)  // every name listed, so one appears twice
    return fail(err, Status::kCorrupt, "%s %d holds %zu tensors, %zu expected (a name appears twice)",
                layer < 0 ? "model level" : "layer", layer, have, n);
  return Status::kOk;
}

Status finish_ends(const FileView& f, const spec::Ends& e, ModelImpl* m, Error* err) {
  if (e.standardized) {
    const float *sd = f.host_f32(m->in_std), *mu = f.host_f32(m->in_mean);
    for (uint32_t i = 0; i < e.d_input; ++i)
      if (!(sd[i] > 0.f) || !std::isfinite(sd[i]) || !std::isfinite(mu[i]))
        return fail(err, Status::kCorrupt,
                    "input_std[%u] = %g is not a finite positive number (or the mean is not finite)", i,
                    static_cast<double>(sd[i]));
  }
  if (e.tokens && !e.untied) m->head = m->embed;  // a tied head is the embedding
  m->d_input = e.d_input;
  m->d_output = e.d_output;
  return Status::kOk;
}

namespace {

const char* state_type_name(StateType t) {
  return t == StateType::kF32 ? "f32" : t == StateType::kF16 ? "f16" : "i64";
}

}  // namespace

Status bind_state_entry(const FileView& f, const spec::StateEntry& e, StateSlot* slot, Error* err) {
  const fb::StateLayout* sl = f.model->state();
  if (!sl || !sl->tensors()) return fail(err, Status::kCorrupt, "state layout is missing");
  const uint64_t total = sl->state_bytes();
  if (total > (uint64_t(1) << 40))
    return fail(err, Status::kCorrupt, "state_bytes %llu is not sane", static_cast<unsigned long long>(total));
  const fb::StateTensor* t = nullptr;
  for (const fb::StateTensor* c : *sl->tensors())
    if (c && c->name() && std::strcmp(c->name()->c_str(), e.name) == 0) t = c;
  if (!t) return fail(err, Status::kCorrupt, "state tensor %s is missing", e.name);
  if (!u64_vector_ok(t->shape())) return fail(err, Status::kCorrupt, "state tensor %s: shape vector is misaligned", e.name);
  bool same = t->shape()->size() == e.ndim;
  uint64_t count = 1;
  for (uint32_t k = 0; same && k < e.ndim; ++k) {
    same = t->shape()->Get(k) == e.shape[k];
    count *= e.shape[k];  // bounded: the hyper-parameters were checked
  }
  if (!same) return fail(err, Status::kCorrupt, "state tensor %s: shape differs from the hyper-parameters", e.name);
  if (static_cast<unsigned>(t->dtype()) != static_cast<unsigned>(e.type))
    return fail(err, Status::kCorrupt, "state tensor %s must be %s", e.name, state_type_name(e.type));
  const uint64_t bytes = count * state_type_bytes(e.type);
  if (t->size() != bytes || t->offset() % kAlign != 0 || t->offset() > total || t->size() > total - t->offset())
    return fail(err, Status::kCorrupt, "state tensor %s: offset %llu size %llu do not fit a %llu-byte state", e.name,
                static_cast<unsigned long long>(t->offset()), static_cast<unsigned long long>(t->size()),
                static_cast<unsigned long long>(total));
  *slot = StateSlot{t->name()->c_str(), t->offset(), count, e.type};
  return Status::kOk;
}

Status finish_state(const FileView& f, StateSlot* slots, uint32_t n, ModelImpl* m, Error* err) {
  const fb::StateLayout* sl = f.model->state();
  if (!sl || !sl->tensors()) return fail(err, Status::kCorrupt, "state layout is missing");
  if (sl->tensors()->size() != n)
    return fail(err, Status::kCorrupt, "state layout has %u tensors, the architecture needs %u", sl->tensors()->size(), n);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = i + 1; j < n; ++j) {
      const uint64_t a0 = slots[i].offset, a1 = a0 + slots[i].bytes();
      const uint64_t b0 = slots[j].offset, b1 = b0 + slots[j].bytes();
      if (a0 < b1 && b0 < a1)
        return fail(err, Status::kCorrupt, "state tensors %s and %s overlap", slots[i].name, slots[j].name);
    }
  uint64_t end = 0;
  for (uint32_t i = 0; i < n; ++i) end = slots[i].offset + slots[i].bytes() > end ? slots[i].offset + slots[i].bytes() : end;
  if (sl->state_bytes() != align_up(end, kAlign))
    return fail(err, Status::kCorrupt, "state_bytes %llu, the state tensors need %llu",
                static_cast<unsigned long long>(sl->state_bytes()), static_cast<unsigned long long>(align_up(end, kAlign)));
  m->state_slots = slots;
  m->n_state_slots = n;
  m->state_bytes = sl->state_bytes();
  return Status::kOk;
}

}  // namespace rill
