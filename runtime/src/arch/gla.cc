// Gated linear attention (docs/architectures.md, GLA): the forward pass. What the file holds: arch/gla.h.
// Every layer: h += mixer(RMSNorm(h)), then h += mlp(RMSNorm(h)).
#include <cmath>

#include "arch/bind.h"
#include "arch/gla.h"

namespace rill {
namespace {

using Spec = spec::Gla;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width]. The MLP's buffers lie over the mixer's.
struct Scratch {
  float *h, *u, *o;   // [d] residual stream, normed input, a block's output
  float* proj;        // [2HK + HV] q, k, v
  float* qkv;         // [2HK + HV] after the short convolution (+ SiLU)
  float* gk;          // [HK] the gate's logits
  float* low;         // [R]
  float *r, *w, *k;   // [HK] the wkv inputs (gate_keys)
  float* v;           // [HV]
  float* y;           // [HV]
  float* g;           // [HV] the output gate
  float *gate, *up;   // [F]
  float* wkv_work;    // the chunked wkv's scratch (arch.h, wkv_work)
};
using spec::gla::d, spec::gla::H, spec::gla::K, spec::gla::V, spec::gla::R, spec::gla::F;
constexpr Buffer<Hyper, Scratch> kScratch[] = {
    {&Scratch::h, d},         {&Scratch::u, d},        {&Scratch::o, d},
    {&Scratch::proj, 2 * H * K + H * V},               {&Scratch::qkv, 2 * H * K + H * V},
    {&Scratch::gk, H * K},    {&Scratch::low, R},      {&Scratch::r, H * K},
    {&Scratch::w, H * K},     {&Scratch::k, H * K},    {&Scratch::v, H * V},
    {&Scratch::y, H * V},     {&Scratch::g, H * V},
    {.f32 = &Scratch::gate, .width = F, .over = &Scratch::proj},
    {.f32 = &Scratch::up, .width = F, .over = &Scratch::qkv},
    {.f32 = &Scratch::wkv_work, .width = wkv_work(H * K, H * V, H), .per_row = false, .chunked = true}};

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, H = p.n_heads, K = p.head_k, V = p.head_v, P = 2 * H * K + H * V;
  Scratch s;
  carve(kScratch, p, n, x.scratch, &s, x.chunked_prefill);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];

    // S <- diag(w) S + v kᵀ per head (w per key channel), y = S q K^-1/2.
    op.rmsnorm(x, s.h, L.attn_norm.f32(), s.u, n, d, p.norm_eps);
    op.matmul(x, L.in_proj, s.u, d, s.proj, P, n);  // q, k, v [n, P]
    const float* qkv = s.proj;
    if (p.short_conv) {
      op.conv_step(x, state(r, L.conv), L.conv_w.f32(), nullptr, s.proj, P, s.qkv, n, P, p.d_conv, true);
      qkv = s.qkv;
    }
    lora(x, L.gk1, L.gk2, L.gk_bias.f32(), s.u, d, nullptr, s.low, s.gk, n);  // gate logits [n, HK]
    op.gate_keys(x, qkv, P, s.gk, H * K, nullptr, p.gate_normalizer, 1.f / std::sqrt(static_cast<float>(K)), s.r, s.w,
                 s.k, s.v, n, H, K, V);
    op.wkv(x, state(r, L.wkv), s.r, s.w, s.k, s.v, nullptr, nullptr, s.y, n, H, K, V, false, s.wkv_work);  // y [n, HV]
    gated_output(x, L.g_proj, L.o_norm, L.out_proj, s.u, s.y, s.g, s.o, s.h, n, H, V, p.norm_eps);

    swiglu_block(x, L.mlp_norm, L.gate, L.up, L.down, s.h, s.u, s.gate, s.up, s.o, n, p.norm_eps);
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const Architecture kGla = architecture<Spec, kScratch>(forward);

}  // namespace rill
