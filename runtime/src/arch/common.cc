// Binding helpers shared by the architecture files.
#include <cmath>

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
                       size_t n_extra, bool norm_f) {
  const auto Mat = {DType::kF32, DType::kF16, DType::kI8, DType::kI4};
  const auto F32 = {DType::kF32};
  const auto* top = f.model->tensors();
  const fb::Io* io = f.model->io();
  const bool vin = io && io->input() == fb::IoKind::Vector, vout = io && io->output() == fb::IoKind::Vector;
  if (io && (static_cast<unsigned>(io->input()) > 1 || static_cast<unsigned>(io->output()) > 1))
    return fail(err, Status::kUnsupported, "input or output kind %u/%u is not known to this reader",
                static_cast<unsigned>(io->input()), static_cast<unsigned>(io->output()));
  const uint64_t din = vin ? io->d_input() : 0, dout = vout ? io->d_output() : V;
  if ((vin || vout) && V != 0)
    return fail(err, Status::kCorrupt, "a model with vector input or output has vocab_size %llu, 0 expected",
                static_cast<unsigned long long>(V));
  if ((!vin || !vout) && (vin || vout))
    return fail(err, Status::kUnsupported, "mixed token and vector input/output is not supported");
  if (!vin && V == 0) return fail(err, Status::kCorrupt, "vocab_size is 0");
  if (vin && (din < 1 || din > (1u << 16) || dout < 1 || dout > (1u << 16)))
    return fail(err, Status::kCorrupt, "d_input %llu or d_output %llu is outside [1, 65536]",
                static_cast<unsigned long long>(din), static_cast<unsigned long long>(dout));
  Status s;
  size_t n_top = n_extra;
  auto bind = [&](const char* name, std::initializer_list<uint64_t> shape, bool matrix, TensorView* out) {
    if (s != Status::kOk) return;
    s = bind_tensor(f, find_tensor(top, name), name, shape, matrix ? Mat : F32, out, err);
    ++n_top;
  };
  s = Status::kOk;
  if (norm_f) bind("norm_f", {d}, false, &m->norm_f);
  if (!vin) {
    bind("embedding", {V, d}, true, &m->embed);
    if (tied) {
      if (find_tensor(top, "head")) return fail(err, Status::kCorrupt, "tied model also stores a head tensor");
      m->head = m->embed;
    } else {
      bind("head", {V, d}, true, &m->head);
    }
  } else {
    if (tied) return fail(err, Status::kCorrupt, "a vector model cannot tie its head to an embedding");
    bind("encoder", {d, din}, true, &m->embed);
    bind("encoder_bias", {d}, false, &m->embed_b);
    bind("decoder", {dout, d}, true, &m->head);
    bind("decoder_bias", {dout}, false, &m->head_b);
    if (s == Status::kOk && (find_tensor(top, "input_mean") || find_tensor(top, "input_std"))) {
      bind("input_mean", {din}, false, &m->in_mean);
      bind("input_std", {din}, false, &m->in_std);
      if (s == Status::kOk) {
        const float *sd = f.host_f32(m->in_std), *mu = f.host_f32(m->in_mean);
        for (uint64_t i = 0; i < din; ++i)
          if (!(sd[i] > 0.f) || !std::isfinite(sd[i]) || !std::isfinite(mu[i]))
            return fail(err, Status::kCorrupt, "input_std[%llu] = %g is not a finite positive number (or the mean is "
                        "not finite)", static_cast<unsigned long long>(i), static_cast<double>(sd[i]));
      }
    }
  }
  if (s != Status::kOk) return s;
  if (!top || top->size() != n_top)
    return fail(err, Status::kCorrupt, "model has %u top-level tensors, %zu expected", top ? top->size() : 0u, n_top);
  m->d_input = static_cast<uint32_t>(din);
  m->d_output = static_cast<uint32_t>(dout);
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

void model_input(const Exec& x, const ModelImpl& m, const Rows& r, float* h) {
  const Ops& op = *x.backend->ops;
  const size_t n = r.n;
  if (!m.d_input) {
    op.embed(x, m.embed, r.tokens, h, n);
    return;
  }
  const size_t din = m.d_input, d = m.embed.rows();
  if (m.in_mean) op.standardize(x, r.inputs, m.in_mean.f32(), m.in_std.f32(), n, din);  // in place
  op.matmul(x, m.embed, r.inputs, din, h, d, n);
  op.add_bias(x, h, m.embed_b.f32(), n, d);
}

void lm_head(const Exec& x, const ModelImpl& m, const Rows& r, const float* h, float* u, size_t d, float eps,
             const float* norm_bias) {
  if (!r.logits || r.n_logits == 0) return;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n_logits;
  const float* last = h + (r.n - n) * d;  // [n, d]
  if (m.norm_f) {
    if (norm_bias) op.layernorm(x, last, m.norm_f.f32(), norm_bias, u, n, d, eps);
    else op.rmsnorm(x, last, m.norm_f.f32(), u, n, d, eps);
    last = u;
  }
  op.matmul(x, m.head, last, d, r.logits, m.head.rows(), n);  // logits [n, V] or outputs [n, d_output]
  if (m.head_b) op.add_bias(x, r.logits, m.head_b.f32(), n, m.head.rows());
}

}  // namespace rill
