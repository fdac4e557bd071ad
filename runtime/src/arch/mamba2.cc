// Mamba-2 / SSD (docs/architectures.md, Mamba-2): the forward pass. What the file holds: arch/mamba2.h.
//
// d = d_model, E = d_inner = H * P, G groups sharing B and C, N = d_state, K = d_conv,
// conv_dim = E + 2GN (the conv covers x, B and C).
#include "arch/bind.h"
#include "arch/mamba2.h"
#include "arch/ssd_mixer.h"

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
  float* ssd_work;  // the chunked SSD's scratch (arch.h, ssd_work)
};
using spec::mamba2::d, spec::mamba2::E, spec::mamba2::G, spec::mamba2::H, spec::mamba2::N;
constexpr Buffer<Hyper, Scratch> kScratch[] = {{&Scratch::h, d},      {&Scratch::u, d},
                                               {&Scratch::zxbcdt, 2 * E + 2 * G * N + H},
                                               {&Scratch::xbc, E + 2 * G * N},
                                               {&Scratch::dt, H},     {&Scratch::y, E},
                                               {&Scratch::o, d},
                                               {.f32 = &Scratch::ssd_work, .width = ssd_work(E, H), .per_row = false,
                                                .chunked = true}};

// n rows through the whole model: the products over all rows at once; conv and the SSD step advance
// each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model;
  Scratch s;  // each buffer [n, ...]
  carve(kScratch, p, n, x.scratch, &s, x.chunked_prefill);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    op.rmsnorm(x, s.h, L.norm.f32(), s.u, n, d, p.norm_eps);                          // u [n, d]
    ssd_mixer(x, L, p, p.n_groups, r, s.u, SsdBuffers{s.zxbcdt, s.xbc, s.dt, s.y, s.ssd_work}, s.o);  // o [n, d]
    op.add(x, s.h, s.o, n * d);                                                       // residual
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const Architecture kMamba2 = architecture<Spec, kScratch>(forward);

}  // namespace rill
