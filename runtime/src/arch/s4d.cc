// S4D (docs/architectures.md, S4D; state-spaces/s4, models/s4/s4d.py and example.py's S4Model): the
// forward pass, after the converter's zero-order-hold discretization. What the file holds: arch/s4d.h.
//
// H = d_model, M = d_state / 2 complex modes per channel. A block, as the authors define it:
//   z = LayerNorm(h) if prenorm else h
//   y = GELU(SSM(z) + D z)                 SSM: s <- Ā s + z, y = 2 Re(C̃ s), per channel and mode
//   h = h + GLU(output_linear(y))          output_linear: a 1x1 conv to 2H (a matrix), GLU over channels
//   h = LayerNorm(h) if not prenorm
// then the running mean over time (pool = mean) and the decoder.
#include "arch/bind.h"
#include "arch/s4d.h"

namespace rill {
namespace {

using Spec = spec::S4d;
using Hyper = Spec::Hyper;

struct Scratch {
  float* h;  // [H]  residual stream
  float* z;  // [H]  block input (normed when prenorm)
  float* y;  // [H]  SSM output
  float* g;  // [2H] output_linear
};
using spec::s4d::H;
constexpr Buffer<Hyper, Scratch> kScratch[] = {{&Scratch::h, H}, {&Scratch::z, H}, {&Scratch::y, H}, {&Scratch::g, 2 * H}};

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, H = p.d_model, M = p.modes;
  Scratch s;  // each buffer [n, ...]
  carve(kScratch, p, n, x.scratch, &s);
  model_input(x, m, r, s.h);  // h [n, H] = encoder(input)
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    const float* z = s.h;
    if (p.prenorm) {
      op.layernorm(x, s.h, L.norm_w.f32(), L.norm_b.f32(), s.z, n, H, p.norm_eps);
      z = s.z;
    }
    op.s4d_step(x, state(r, L.ssm), L.A.f32(), L.C.f32(), L.D.f32(), z, s.y, n, H, M);  // y = SSM(z) + D z
    op.act(x, Act::kGeluErf, s.y, n * H);
    op.matmul(x, L.out_proj, s.y, H, s.g, 2 * H, n);  // g [n, 2H]
    op.add_bias(x, s.g, L.out_proj_b.f32(), n, 2 * H);
    op.glu(x, s.g, s.y, n, H);  // y = g[:H] sigmoid(g[H:])
    op.add(x, s.h, s.y, n * H);  // residual
    if (!p.prenorm) {
      op.layernorm(x, s.h, L.norm_w.f32(), L.norm_b.f32(), s.z, n, H, p.norm_eps);
      float* t = s.h;  // h = LayerNorm(h): swap the buffers
      s.h = s.z;
      s.z = t;
    }
  }
  if (p.pool_mean) op.running_mean(x, state(r, arch.g.pool_mean), state(r, arch.g.pool_count), s.h, n, H);
  lm_head(x, m, r, s.h, s.z, H, p.norm_eps);  // decoder (no final norm)
}

}  // namespace

const Architecture kS4d = architecture<Spec, kScratch>(forward);

}  // namespace rill
