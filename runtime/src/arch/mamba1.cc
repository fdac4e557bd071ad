// Mamba-1 (docs/architectures.md, Mamba-1): the forward pass. What the file holds: arch/mamba1.h.
//
// d = d_model, E = d_inner, N = d_state, K = d_conv, R = dt_rank.
#include <cmath>

#include "arch/bind.h"
#include "arch/mamba1.h"

namespace rill {
namespace {

using Spec = spec::Mamba1;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width].
struct Scratch {
  float* h;    // [d]   residual stream
  float* u;    // [d]   normed input
  float* xz;   // [2E]  in_proj output: x then z
  float* xc;   // [E]   conv output (after silu)
  float* dbc;  // [R + 2N] dt_low, B, C
  float* dt;   // [E]
  float* y;    // [E]
  float* o;    // [d]   out_proj output
};
using spec::mamba1::d, spec::mamba1::E, spec::mamba1::N, spec::mamba1::R;
constexpr Buffer<Hyper, Scratch> kScratch[] = {{&Scratch::h, d},  {&Scratch::u, d},        {&Scratch::xz, 2 * E},
                                               {&Scratch::xc, E}, {&Scratch::dbc, R + 2 * N}, {&Scratch::dt, E},
                                               {&Scratch::y, E},  {&Scratch::o, d}};

// n rows through the whole model. The products take all rows at once (each weight read once per pass);
// conv and scan advance each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, E = p.d_inner, N = p.d_state, R = p.dt_rank, K = p.d_conv, DBC = R + 2 * N;
  Scratch s;  // each buffer [n, ...]
  carve(kScratch, p, n, x.scratch, &s);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    op.rmsnorm(x, s.h, L.norm.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    op.matmul(x, L.in_proj, s.u, d, s.xz, 2 * E, n);  // xz [n, 2E]: x, then z
    if (L.in_proj_b) op.add_bias(x, s.xz, L.in_proj_b.f32(), n, 2 * E);
    op.conv_step(x, state(r, L.conv), L.conv_w.f32(), L.conv_b ? L.conv_b.f32() : nullptr, s.xz, 2 * E, s.xc, n, E,
                 K, true);  // xc = silu(conv x)
    op.matmul(x, L.x_proj, s.xc, E, s.dbc, DBC, n);  // dbc [n, R + 2N]: dt_low, B, C
    op.matmul(x, L.dt_proj, s.dbc, DBC, s.dt, E, n);  // dt [n, E] from dt_low
    op.softplus_dt(x, s.dt, E, L.dt_b.f32(), s.dt, n, E, -INFINITY, INFINITY);  // bias before softplus, no clamp
    op.ssm_scan(x, state(r, L.ssm), L.A.f32(), s.dt, s.xc, s.dbc + R, s.dbc + R + N, DBC, L.D.f32(), s.xz + E, 2 * E,
                s.y, n, E, N);  // y [n, E], gated by silu(z)
    op.matmul(x, L.out_proj, s.y, E, s.o, d, n);  // o [n, d]
    if (L.out_proj_b) op.add_bias(x, s.o, L.out_proj_b.f32(), n, d);
    op.add(x, s.h, s.o, n * d);  // residual
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const Architecture kMamba1 = architecture<Spec, kScratch>(forward);

}  // namespace rill
