// Gated DeltaNet (docs/architectures.md, Gated DeltaNet): the forward pass. What the file holds:
// arch/gated_deltanet.h. Every layer: h += mixer(RMSNorm(h)), then h += mlp(RMSNorm(h)).
#include <cmath>

#include "arch/bind.h"
#include "arch/gated_deltanet.h"

namespace rill {
namespace {

using Spec = spec::GatedDeltaNet;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width]. The MLP's buffers lie over the mixer's.
struct Scratch {
  float *h, *u, *o;  // [d] residual stream, normed input, a block's output
  float* proj;       // [2HK + HvV + 2Hv] q, k, v, a, b
  float* qkv;        // [2HK + HvV] after the short convolution (+ SiLU)
  float* dt;         // [Hv]
  float *r, *w, *k, *b;  // [Hv K] the wkv inputs (delta_keys)
  float* v;          // [Hv V] β v
  float* y;          // [Hv V]
  float* g;          // [Hv V] the output gate
  float *gate, *up;  // [F]
  float* wkv_work;   // the chunked wkv's scratch (arch.h, wkv_work)
};
using spec::gated_deltanet::d, spec::gated_deltanet::H, spec::gated_deltanet::Hv, spec::gated_deltanet::K,
    spec::gated_deltanet::V, spec::gated_deltanet::F;
constexpr Buffer<Hyper, Scratch> kScratch[] = {
    {&Scratch::h, d},
    {&Scratch::u, d},
    {&Scratch::o, d},
    {&Scratch::proj, 2 * H * K + Hv * V + 2 * Hv},
    {&Scratch::qkv, 2 * H * K + Hv * V},
    {&Scratch::dt, Hv},
    {&Scratch::r, Hv * K},
    {&Scratch::w, Hv * K},
    {&Scratch::k, Hv * K},
    {&Scratch::b, Hv * K},
    {&Scratch::v, Hv * V},
    {&Scratch::y, Hv * V},
    {&Scratch::g, Hv * V},
    {.f32 = &Scratch::gate, .width = F, .over = &Scratch::proj},
    {.f32 = &Scratch::up, .width = F, .over = &Scratch::qkv},
    {.f32 = &Scratch::wkv_work, .width = wkv_work(Hv * K, Hv * V, Hv), .per_row = false, .chunked = true}};

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, H = p.n_heads, Hv = p.n_v_heads, K = p.head_k, V = p.head_v;
  const size_t conv_dim = 2 * H * K + Hv * V, P = conv_dim + 2 * Hv;
  Scratch s;
  carve(kScratch, p, n, x.scratch, &s, x.chunked_prefill);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];

    // The gated delta rule: S <- α S (I − β k kᵀ) + β v kᵀ, y = S q, per value head.
    op.rmsnorm(x, s.h, L.attn_norm.f32(), s.u, n, d, p.norm_eps);
    op.matmul(x, L.in_proj, s.u, d, s.proj, P, n);  // q, k, v, a, b [n, P]
    op.conv_step(x, state(r, L.conv), L.conv_w.f32(), nullptr, s.proj, P, s.qkv, n, conv_dim, p.d_conv, true);
    op.softplus_dt(x, s.proj + conv_dim, P, L.dt_b.f32(), s.dt, n, Hv, 0.f, INFINITY);  // dt [n, Hv]
    op.delta_keys(x, s.qkv, conv_dim, s.dt, L.A.f32(), s.proj + conv_dim + Hv, P, p.neg_eigval ? 2.f : 1.f, s.r, s.w,
                  s.k, s.b, s.v, n, H, Hv, K, V);
    op.wkv(x, state(r, L.wkv), s.r, s.w, s.k, s.v, s.k, s.b, s.y, n, Hv, K, V, false, s.wkv_work);  // y [n, Hv V]
    gated_output(x, L.g_proj, L.o_norm, L.out_proj, s.u, s.y, s.g, s.o, s.h, n, Hv, V, p.norm_eps);

    swiglu_block(x, L.mlp_norm, L.gate, L.up, L.down, s.h, s.u, s.gate, s.up, s.o, n, p.norm_eps);
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const Architecture kGatedDeltaNet = architecture<Spec, kScratch>(forward);

}  // namespace rill
