// The Mamba-2 (SSD) mixer as ops, shared by every architecture that has it (arch/mamba2.cc,
// arch/mamba2_hybrid.cc): o = out_proj(gated_norm(SSD(conv(x, B, C)), z)) for n rows of normed input u.
#pragma once

#include "arch/arch.h"

namespace rill {

// The mixer's activations, each [n, width]: zxbcdt [2E + 2GN + H], xbc [E + 2GN], dt [H], y [E]; and the
// chunked SSD's scratch (arch.h, ssd_work), null outside passes that may take it.
struct SsdBuffers {
  float *zxbcdt, *xbc, *dt, *y, *work;
};

// L: a layer's views and state (in_proj, conv_w, conv_b, dt_b, A, D, gate_norm, out_proj; conv, ssm);
// Hy: d_model, d_inner, d_state, n_heads, head_dim, n_groups, d_conv, dt_min, dt_max, norm_eps,
// conv_dim(), in_rows(). The gated RMSNorm normalises norm_groups groups of E / norm_groups channels.
template <class L, class Hy>
void ssd_mixer(const Exec& x, const L& layer, const Hy& p, size_t norm_groups, const Rows& r, const float* u,
               const SsdBuffers& b, float* o) {
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, E = p.d_inner, N = p.d_state, H = p.n_heads, G = p.n_groups;
  const size_t C = p.conv_dim(), IN = p.in_rows();
  op.matmul(x, layer.in_proj, u, d, b.zxbcdt, IN, n);  // [n, z (E) | xBC (conv_dim) | dt (H)]
  op.conv_step(x, state(r, layer.conv), layer.conv_w.f32(), layer.conv_b ? layer.conv_b.f32() : nullptr,
               b.zxbcdt + E, IN, b.xbc, n, C, p.d_conv, true);  // xbc = silu(conv xBC): x [H, P], B, C [G, N]
  op.softplus_dt(x, b.zxbcdt + E + C, IN, layer.dt_b.f32(), b.dt, n, H, p.dt_min, p.dt_max);  // dt [n, H]
  op.ssd_step(x, state(r, layer.ssm), b.xbc, b.xbc + E, b.xbc + E + G * N, C, b.dt, layer.A.f32(), layer.D.f32(),
              b.y, n, H, p.head_dim, N, G, b.work);  // y [n, E]
  op.gated_rmsnorm(x, b.y, b.zxbcdt, IN, layer.gate_norm.f32(), n, E, norm_groups, p.norm_eps);  // norm(y silu(z))
  op.matmul(x, layer.out_proj, b.y, E, o, d, n);  // o [n, d]
}

}  // namespace rill
