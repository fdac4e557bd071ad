// Mamba-2 / attention hybrids: Granite 4.0-H, Nemotron-H (docs/architectures.md, Mamba-2 hybrids): the
// forward pass. What the file holds: arch/mamba2_hybrid.h. Every layer is a pre-norm residual block:
//   h += residual_scale * block(RMSNorm(h)),  block = the Mamba-2 mixer, attention, or the MLP
// with h = embed_scale * embedding at the start and logits = logits_scale * head(RMSNorm(h)) at the end.
#include "arch/bind.h"
#include "arch/attention.h"
#include "arch/mamba2_hybrid.h"
#include "arch/ssd_mixer.h"

namespace rill {
namespace {

using Spec = spec::Mamba2Hybrid;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width] (scores: [QH, C] for one row at a time).
// The three block kinds' buffers lie over one another.
struct Scratch {
  float *h, *u, *o;  // [d] residual stream, normed input, a block's output
  int64_t* P;        // [1] each row's position
  // Mamba2Mixer
  float *zxbcdt, *xbc, *dt, *y;  // [2E + 2GN + H], [E + 2GN], [H], [E]
  float* ssd_work;                // the chunked SSD's scratch (arch.h, ssd_work)
  // AttentionBlock
  float *q, *k, *v, *attn;  // [QH D], [KV D], [KV D], [QH D]
  float* scores;            // [QH, C]
  // MlpBlock
  float *gate, *up;  // [F]
};
using spec::mamba2_hybrid::C, spec::mamba2_hybrid::D, spec::mamba2_hybrid::d, spec::mamba2_hybrid::E,
    spec::mamba2_hybrid::F, spec::mamba2_hybrid::G, spec::mamba2_hybrid::H, spec::mamba2_hybrid::KV,
    spec::mamba2_hybrid::N, spec::mamba2_hybrid::QH;
constexpr Buffer<Hyper, Scratch> kScratch[] = {
    {&Scratch::h, d},
    {&Scratch::u, d},
    {&Scratch::o, d},
    {.f32 = nullptr, .width = 1, .i64 = &Scratch::P},
    {&Scratch::zxbcdt, 2 * E + 2 * G * N + H},
    {&Scratch::xbc, E + 2 * G * N},
    {&Scratch::dt, H},
    {&Scratch::y, E},
    {.f32 = &Scratch::q, .width = QH * D, .over = &Scratch::zxbcdt},
    {.f32 = &Scratch::k, .width = KV * D, .over = &Scratch::xbc},
    {.f32 = &Scratch::v, .width = KV * D, .over = &Scratch::dt},
    {.f32 = &Scratch::attn, .width = QH * D, .over = &Scratch::y},
    {&Scratch::scores, QH * C, false},
    {.f32 = &Scratch::gate, .width = F, .over = &Scratch::zxbcdt},
    {.f32 = &Scratch::up, .width = F, .over = &Scratch::xbc},
    {.f32 = &Scratch::ssd_work, .width = ssd_work(E, H), .per_row = false, .chunked = true}};

// o = down(act(gate u) * up u), or down(act(up u)).
void mlp(const Exec& x, const Hyper& p, const Spec::Layer& L, size_t n, const Scratch& s) {
  const Ops& op = *x.backend->ops;
  const size_t d = p.d_model, F = p.d_ffn;
  const Act act = p.mlp_act == 0 ? Act::kSilu : Act::kReluSq;
  op.matmul(x, L.up, s.u, d, s.up, F, n);  // up [n, F]
  if (p.mlp_gated) {
    op.matmul(x, L.gate, s.u, d, s.gate, F, n);  // gate [n, F]
    op.act(x, act, s.gate, n * F);
    op.mul(x, s.up, s.gate, n * F);
  } else {
    op.act(x, act, s.up, n * F);
  }
  op.matmul(x, L.down, s.up, F, s.o, d, n);  // o [n, d]
}

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model;
  const AttentionShape attn{p.attn_heads, p.kv_heads,     p.attn_head_dim, p.rope_dims,
                            p.rope_theta, p.max_context, p.attn_scale,    p.kv_f16};
  Scratch s;
  carve(kScratch, p, n, x.scratch, &s, x.chunked_prefill);
  model_input(x, m, r, s.h);  // h [n, d]
  if (p.embed_scale != 1.f) op.scale(x, s.h, p.embed_scale, n * d);
  op.positions(x, state(r, arch.g.position), s.P, n);  // P [n]; the state counts the rows
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    op.rmsnorm(x, s.h, L.norm.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    if (L.kind == fb::LayerKind::Mamba2Mixer)
      ssd_mixer(x, L, p, p.norm_groups, r, s.u, SsdBuffers{s.zxbcdt, s.xbc, s.dt, s.y, s.ssd_work}, s.o);
    else if (L.kind == fb::LayerKind::AttentionBlock)  // over all the stream's tokens: the ring holds max_context
      gqa_attention(x, L, attn, r, s.u, d, AttentionBuffers{s.q, s.k, s.v, s.attn, s.scores, s.P}, s.o);
    else
      mlp(x, p, L, n, s);
    if (p.residual_scale != 1.f) op.scale(x, s.o, p.residual_scale, n * d);
    op.add(x, s.h, s.o, n * d);  // residual
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
  if (r.out && r.n_out && p.logits_scale != 1.f) op.scale(x, r.out, p.logits_scale, r.n_out * m.head.rows());
}

}  // namespace

const Architecture kMamba2Hybrid = architecture<Spec, kScratch>(forward);

}  // namespace rill
