// RecurrentGemma / Griffin (docs/architectures.md, RecurrentGemma): the forward pass. What the file
// holds: arch/recurrent_gemma.h. Layers of two kinds, each followed by a GeGLU MLP:
//   RglruBlock           gelu(W_y u) * RG-LRU(conv(W_x u)), the RG-LRU's gates block-diagonal
//   LocalAttentionBlock  multi-query attention with partial RoPE over the last `window` tokens
//
// d = d_model, Wl = lru_width, F = d_ffn, H heads of D channels (A = H * D), KV key/value heads,
// K = conv width, bw = Wl / H (a gate block).
#include <cmath>

#include "arch/attention.h"
#include "arch/bind.h"
#include "arch/recurrent_gemma.h"

namespace rill {
namespace {

using Spec = spec::RecurrentGemma;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width] (scores: [H, window] for one row at a time).
// A layer's block and its MLP run one after the other: the RG-LRU block's and the MLP's buffers lie over
// the attention block's.
struct Scratch {
  float *h, *u, *o;  // [d] residual stream, normed input, a block's output
  int64_t* P;        // [1] each row's position
  // LocalAttentionBlock
  float *q, *k, *v;  // [A], [KV D], [KV D]
  float* attn;       // [A] the heads' outputs
  float* scores;     // [H, window]
  // RglruBlock
  float* y_branch;         // [Wl] gelu(W_y u)
  float* x_branch;         // [Wl] W_x u
  float* conv;             // [Wl] conv(x_branch)
  float *gate_x, *gate_a;  // [Wl] the input and recurrence gates' pre-activations
  float* lru;              // [Wl] RG-LRU(conv), then times y_branch (over x_branch, read by the conv)
  // MLP
  float *mlp_gate, *mlp_up;  // [F]
};
using spec::recurrent_gemma::d, spec::recurrent_gemma::D, spec::recurrent_gemma::F, spec::recurrent_gemma::H,
    spec::recurrent_gemma::KV, spec::recurrent_gemma::W, spec::recurrent_gemma::Wl;
constexpr Buffer<Hyper, Scratch> kScratch[] = {
    {&Scratch::h, d},
    {&Scratch::u, d},
    {&Scratch::o, d},
    {.f32 = nullptr, .width = 1, .i64 = &Scratch::P},
    {&Scratch::q, H * D},
    {&Scratch::k, KV * D},
    {&Scratch::v, KV * D},
    {&Scratch::attn, H * D},
    {&Scratch::scores, H * W, false},
    {.f32 = &Scratch::y_branch, .width = Wl, .over = &Scratch::q},
    {.f32 = &Scratch::x_branch, .width = Wl, .over = &Scratch::k},
    {.f32 = &Scratch::conv, .width = Wl, .over = &Scratch::v},
    {.f32 = &Scratch::gate_x, .width = Wl, .over = &Scratch::attn},
    {&Scratch::gate_a, Wl},
    {.f32 = &Scratch::lru, .width = Wl, .over = &Scratch::x_branch},
    {.f32 = &Scratch::mlp_gate, .width = F, .over = &Scratch::q},
    {.f32 = &Scratch::mlp_up, .width = F, .over = &Scratch::k}};

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, Wl = p.lru_width, F = p.d_ffn, H = p.n_heads, K = p.conv_width,
               bw = p.block;
  const AttentionShape attn{H,       p.n_kv_heads, p.head_dim, p.rope_dims, p.rope_theta, p.window,
                            1.f / std::sqrt(static_cast<float>(p.head_dim)), p.kv_f16};
  Scratch s;
  carve(kScratch, p, n, x.scratch, &s);
  model_input(x, m, r, s.h);                                  // h [n, d]
  if (p.embed_scale != 1.f) op.scale(x, s.h, p.embed_scale, n * d);
  op.positions(x, state(r, arch.g.position), s.P, n);         // P [n]; the state counts the rows
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    op.rmsnorm(x, s.h, L.norm1.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    if (L.kind == fb::LayerKind::LocalAttentionBlock) {  // over the last `window` tokens
      gqa_attention(x, L, attn, r, s.u, d, AttentionBuffers{s.q, s.k, s.v, s.attn, s.scores, s.P}, s.o);
    } else {  // RglruBlock
      linear(x, L.lin_y, L.lin_y_b, s.u, d, s.y_branch, n);   // [n, Wl]
      op.act(x, Act::kGeluTanh, s.y_branch, n * Wl);
      linear(x, L.lin_x, L.lin_x_b, s.u, d, s.x_branch, n);   // [n, Wl]
      op.conv_step(x, state(r, L.conv), L.conv_w.f32(), L.conv_b.f32(), s.x_branch, Wl, s.conv, n, Wl, K, false);
      for (size_t b = 0; b < H; ++b) {                        // the block-diagonal gates, a block at a time
        op.matmul(x, L.gate_x.row_block(b * bw, bw), s.conv + b * bw, Wl, s.gate_x + b * bw, Wl, n);
        op.matmul(x, L.gate_a.row_block(b * bw, bw), s.conv + b * bw, Wl, s.gate_a + b * bw, Wl, n);
      }
      op.add_bias(x, s.gate_x, L.gate_x_b.f32(), n, Wl);
      op.add_bias(x, s.gate_a, L.gate_a_b.f32(), n, Wl);
      op.rglru(x, state(r, L.rg_lru), s.conv, s.gate_x, s.gate_a, L.lru_c.f32(), s.P, s.lru, n, Wl);
      op.mul(x, s.lru, s.y_branch, n * Wl);
      linear(x, L.lin_out, L.lin_out_b, s.lru, Wl, s.o, n);   // o [n, d]
    }
    op.add(x, s.h, s.o, n * d);
    // MLP: h += down(gelu(gate u) * up u)
    op.rmsnorm(x, s.h, L.norm2.f32(), s.u, n, d, p.norm_eps);
    linear(x, L.gate, L.gate_b, s.u, d, s.mlp_gate, n);
    linear(x, L.up, L.up_b, s.u, d, s.mlp_up, n);
    op.act(x, Act::kGeluTanh, s.mlp_gate, n * F);
    op.mul(x, s.mlp_gate, s.mlp_up, n * F);
    linear(x, L.down, L.down_b, s.mlp_gate, F, s.o, n);
    op.add(x, s.h, s.o, n * d);
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
  if (r.out && r.n_out && p.soft_cap > 0.f) {  // logits = cap tanh(logits / cap)
    const size_t count = r.n_out * m.head.rows();
    op.scale(x, r.out, 1.f / p.soft_cap, count);
    op.act(x, Act::kTanh, r.out, count);
    op.scale(x, r.out, p.soft_cap, count);
  }
}

}  // namespace

const Architecture kRecurrentGemma = architecture<Spec, kScratch>(forward);

}  // namespace rill
