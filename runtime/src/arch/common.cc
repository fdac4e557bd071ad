// What every architecture's forward pass shares: the model's input and its head.
#include <cmath>

#include "arch/arch.h"

namespace rill {

void linear(const Exec& x, const TensorView& W, const TensorView& b, const float* X, size_t ldx, float* Y, size_t n) {
  const Ops& op = *x.backend->ops;
  op.matmul(x, W, X, ldx, Y, W.rows(), n);
  if (b) op.add_bias(x, Y, b.f32(), n, W.rows());
}

void lora(const Exec& x, const TensorView& down, const TensorView& up, const float* bias, const float* X, size_t ldx,
          const Act* act, float* low, float* out, size_t n) {
  const Ops& op = *x.backend->ops;
  const size_t r = down.rows(), C = up.rows();
  op.matmul(x, down, X, ldx, low, r, n);
  if (act) op.act(x, *act, low, n * r);
  op.matmul(x, up, low, r, out, C, n);
  if (bias) op.add_bias(x, out, bias, n, C);
}

void gated_output(const Exec& x, const TensorView& g_proj, const TensorView& norm, const TensorView& out_proj,
                  const float* u, float* y, float* g, float* o, float* h, size_t n, size_t heads, size_t V, float eps) {
  const Ops& op = *x.backend->ops;
  const size_t d = out_proj.rows(), HV = heads * V;
  op.matmul(x, g_proj, u, d, g, HV, n);
  op.rmsnorm(x, y, norm.f32(), y, n * heads, V, eps);
  op.act(x, Act::kSilu, g, n * HV);
  op.mul(x, y, g, n * HV);
  op.matmul(x, out_proj, y, HV, o, d, n);
  op.add(x, h, o, n * d);
}

void swiglu_block(const Exec& x, const TensorView& norm, const TensorView& gate, const TensorView& up,
                  const TensorView& down, float* h, float* u, float* g, float* upb, float* o, size_t n, float eps) {
  const Ops& op = *x.backend->ops;
  const size_t d = down.rows(), F = up.rows();
  op.rmsnorm(x, h, norm.f32(), u, n, d, eps);
  op.matmul(x, gate, u, d, g, F, n);
  op.matmul(x, up, u, d, upb, F, n);
  op.act(x, Act::kSilu, g, n * F);
  op.mul(x, upb, g, n * F);
  op.matmul(x, down, upb, F, o, d, n);
  op.add(x, h, o, n * d);
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
  if (!r.out || r.n_out == 0) return;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n_out;
  const float* last = h + (r.n - n) * d;  // [n, d]
  if (m.norm_f) {
    if (norm_bias) op.layernorm(x, last, m.norm_f.f32(), norm_bias, u, n, d, eps);
    else op.rmsnorm(x, last, m.norm_f.f32(), u, n, d, eps);
    last = u;
  }
  op.matmul(x, m.head, last, d, r.out, m.head.rows(), n);  // logits [n, V] or outputs [n, d_output]
  if (m.head_b) op.add_bias(x, r.out, m.head_b.f32(), n, m.head.rows());
}

}  // namespace rill
