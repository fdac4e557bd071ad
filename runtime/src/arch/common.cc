// Binding helpers shared by the architecture files.
#include "arch/arch.h"

namespace rill {

Status check_ranges(const char* arch, const RangeCheck* c, size_t n, Error* err) {
  for (size_t i = 0; i < n; ++i)
    if (c[i].value < c[i].lo || c[i].value > c[i].hi)
      return fail(err, Status::kCorrupt, "%s %s = %llu is outside [%llu, %llu]", arch, c[i].name,
                  static_cast<unsigned long long>(c[i].value), static_cast<unsigned long long>(c[i].lo),
                  static_cast<unsigned long long>(c[i].hi));
  return Status::kOk;
}

Status bind_lm_tensors(const FileView& f, ModelImpl* m, uint64_t V, uint64_t d, bool tied, Error* err,
                       size_t n_extra) {
  const auto Mat = {DType::kF32, DType::kF16, DType::kI8, DType::kI4};
  const auto* top = f.model->tensors();
  Status s;
  if ((s = bind_tensor(f, find_tensor(top, "embedding"), "embedding", {V, d}, Mat, &m->embed, err)) != Status::kOk)
    return s;
  if ((s = bind_tensor(f, find_tensor(top, "norm_f"), "norm_f", {d}, {DType::kF32}, &m->norm_f, err)) != Status::kOk)
    return s;
  if (tied) {
    if (find_tensor(top, "head")) return fail(err, Status::kCorrupt, "tied model also stores a head tensor");
    m->head = m->embed;
  } else if ((s = bind_tensor(f, find_tensor(top, "head"), "head", {V, d}, Mat, &m->head, err)) != Status::kOk) {
    return s;
  }
  const size_t n_top = (tied ? 2 : 3) + n_extra;
  if (!top || top->size() != n_top)
    return fail(err, Status::kCorrupt, "model has %u top-level tensors, %zu expected", top ? top->size() : 0u, n_top);
  return Status::kOk;
}

Status bind_layer(const FileView& f, uint32_t i, fb::LayerKind kind, const LayerSpec* specs, size_t n, Error* err) {
  const fb::Layer* lf = f.model->layers()->Get(i);
  if (lf->kind() != kind)
    return fail(err, Status::kCorrupt, "layer %u has kind %u, expected %u", i, static_cast<unsigned>(lf->kind()),
                static_cast<unsigned>(kind));
  const auto* lt = lf->tensors();
  size_t expected = 0;
  for (size_t k = 0; k < n; ++k) {
    const LayerSpec& sp = specs[k];
    char what[64];
    std::snprintf(what, sizeof what, "layers.%u.%s", i, sp.name);
    const fb::Tensor* t = find_tensor(lt, sp.name);
    if (t && sp.optional) return fail(err, Status::kCorrupt, "tensor %s present but its flag is off", what);
    Status s;
    if (sp.matrix)
      s = bind_tensor(f, t, what, sp.shape, {DType::kF32, DType::kF16, DType::kI8, DType::kI4}, sp.out, err, sp.optional);
    else s = bind_tensor(f, t, what, sp.shape, {DType::kF32}, sp.out, err, sp.optional);
    if (s != Status::kOk) return s;
    expected += t ? 1 : 0;
  }
  if (!lt || lt->size() != expected)
    return fail(err, Status::kCorrupt, "layer %u has %u tensors, %zu expected", i, lt ? lt->size() : 0u, expected);
  return Status::kOk;
}

size_t carve_floats(unsigned char* base, const size_t* sizes, size_t n, float** out) {
  size_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    if (out) out[i] = base ? reinterpret_cast<float*>(base + off) : nullptr;
    off += align_up(sizes[i] * sizeof(float), kAlign);
  }
  return off;
}

Status lm_view_bytes(const FileView& f, uint32_t n_layer, size_t arch_bytes, size_t layer_bytes,
                     size_t state_per_layer, size_t* bytes, Error* err) {
  const uint32_t have = f.model->layers() ? f.model->layers()->size() : 0u;
  if (have != n_layer) return fail(err, Status::kCorrupt, "file has %u layers, n_layer is %u", have, n_layer);
  *bytes = align_up(arch_bytes, kAlign) + align_up(n_layer * layer_bytes, kAlign) +
           align_up(state_per_layer * n_layer * sizeof(StateSlot), kAlign);
  return Status::kOk;
}

Status finish_bind(const FileView& f, ModelImpl* m, ExpectStateFn expect, uint32_t n_state, StateSlot* slots,
                   uint32_t d_model, uint32_t n_layer, uint32_t vocab, Error* err) {
  const Status s = bind_state(f, expect, n_state, m, slots, err);
  if (s != Status::kOk) return s;
  m->info.d_model = d_model;
  m->info.n_layer = n_layer;
  m->info.vocab_size = vocab;
  return Status::kOk;
}

void lm_head(const Exec& x, const ModelImpl& m, const Rows& r, const float* h, float* u, size_t d, float eps,
             const float* norm_bias) {
  if (!r.logits || r.n_logits == 0) return;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n_logits;
  const float* last = h + (r.n - n) * d;  // [n, d]
  if (norm_bias) op.layernorm(x, last, m.norm_f.f32(), norm_bias, u, n, d, eps);
  else op.rmsnorm(x, last, m.norm_f.f32(), u, n, d, eps);
  op.matmul(x, m.head, u, d, r.logits, m.head.rows(), n);  // logits [n, V]
}

}  // namespace rill
