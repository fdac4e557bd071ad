// Mamba-2 / SSD (docs/architectures.md, Mamba-2): the forward pass. What the file holds: arch/mamba2.h.
//
// d = d_model, E = d_inner = H * P, G groups sharing B and C, N = d_state, K = d_conv,
// conv_dim = E + 2GN (the conv covers x, B and C).
#include "arch/bind.h"
#include "arch/mamba2.h"

namespace rill {
namespace {

using Spec = spec::Mamba2;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width].
struct Scratch {
  float* h;       // [d]   residual stream
  float* u;       // [d]   normed input
  float* zxbcdt;  // [2E + 2GN + H]
  float* xbc;     // [conv_dim] conv output (after silu): x, B, C
  float* dt;      // [H]
  float* y;       // [E]
  float* o;       // [d]
};
using spec::mamba2::d, spec::mamba2::E, spec::mamba2::G, spec::mamba2::H, spec::mamba2::N;
constexpr Buffer<Hyper, Scratch> kScratch[] = {{&Scratch::h, d},      {&Scratch::u, d},
                                               {&Scratch::zxbcdt, 2 * E + 2 * G * N + H},
                                               {&Scratch::xbc, E + 2 * G * N},
                                               {&Scratch::dt, H},     {&Scratch::y, E},
                                               {&Scratch::o, d}};

// n rows through the whole model: the products over all rows at once; conv and the SSD step advance
// each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, E = p.d_inner, N = p.d_state, H = p.n_heads, G = p.n_groups, K = p.d_conv;
  const size_t C = p.conv_dim(), IN = p.in_rows();
  Scratch s;  // each buffer [n, ...]
  carve(kScratch, p, n, x.scratch, &s);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    op.rmsnorm(x, s.h, L.norm.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    op.matmul(x, L.in_proj, s.u, d, s.zxbcdt, IN, n);  // [n, z (E) | xBC (conv_dim) | dt (H)]
    op.conv_step(x, state(r, L.conv), L.conv_w.f32(), L.conv_b ? L.conv_b.f32() : nullptr, s.zxbcdt + E, IN, s.xbc,
                 n, C, K, true);  // xbc [n, conv_dim] = silu(conv xBC): x [H, P], B [G, N], C [G, N]
    op.softplus_dt(x, s.zxbcdt + E + C, IN, L.dt_b.f32(), s.dt, n, H, p.dt_min, p.dt_max);  // dt [n, H], clamped
    op.ssd_step(x, state(r, L.ssm), s.xbc, s.xbc + E, s.xbc + E + G * N, C, s.dt, L.A.f32(), L.D.f32(), s.y, n, H,
                p.head_dim, N, G);  // y [n, E]
    op.gated_rmsnorm(x, s.y, s.zxbcdt, IN, L.gate_norm.f32(), n, E, G, p.norm_eps);  // y = norm(y silu(z))
    op.matmul(x, L.out_proj, s.y, E, s.o, d, n);  // o [n, d]
    op.add(x, s.h, s.o, n * d);  // residual
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const Architecture kMamba2 = architecture<Spec, kScratch>(forward);

}  // namespace rill
