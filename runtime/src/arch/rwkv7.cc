// RWKV-7 "Goose" (docs/architectures.md, RWKV-7): the forward pass. What the file holds: arch/rwkv7.h.
//
// C = d_model = H * N (H heads of head_size N), F = d_ffn. The embedding LayerNorm (ln0) was folded
// into the embedding rows by the converter.
#include "arch/bind.h"
#include "arch/rwkv7.h"

namespace rill {
namespace {

using Spec = spec::Rwkv7;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width].
struct Scratch {
  float* h;        // [C] residual stream
  float* u;        // [C] LayerNorm output
  float* mix;      // [6C] token-shifted inputs: xr, xw, xk, xv, xa, xg
  float* r;        // [C]
  float* k;        // [C]
  float* v;        // [C]
  float* w;        // [C] decay, exp(log-decay)
  float* a;        // [C] in-context learning rate
  float* g;        // [C] output gate
  float* na;       // [C] -kk, the normalised key (wkv7's a)
  float* b;        // [C] kk * a (wkv7's b)
  float* y;        // [C]
  float* o;        // [C]
  float* v_first;  // [C] layer 0's value, reused by later layers within one token
  float* low;      // [max rank] LoRA bottleneck
  float* ffn;      // [F]
  float* wkv_work;  // the chunked wkv's scratch (arch.h, wkv_work)
};
using spec::rwkv7::C, spec::rwkv7::F, spec::rwkv7::H;
constexpr Buffer<Hyper, Scratch> kScratch[] = {
    {&Scratch::h, C}, {&Scratch::u, C}, {&Scratch::mix, 6 * C}, {&Scratch::r, C},       {&Scratch::k, C},
    {&Scratch::v, C}, {&Scratch::w, C}, {&Scratch::a, C},       {&Scratch::g, C},       {&Scratch::na, C},
    {&Scratch::b, C}, {&Scratch::y, C}, {&Scratch::o, C},       {&Scratch::v_first, C}, {&Scratch::low, &Hyper::max_rank},
    {&Scratch::ffn, F}, {.f32 = &Scratch::wkv_work, .width = wkv_work(C, C, H), .per_row = false, .chunked = true}};

// n rows through the whole model: the products over all rows at once; token shifts and wkv7 advance
// each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, C = p.d_model, H = p.n_heads, N = p.head_size, F = p.d_ffn, C6 = 6 * C;
  static constexpr Act kTanh = Act::kTanh, kSigmoid = Act::kSigmoid;
  Scratch s;  // each buffer [n, ...]
  carve(kScratch, p, n, x.scratch, &s, x.chunked_prefill);
  const float *xr = s.mix, *xw = s.mix + C, *xk = s.mix + 2 * C, *xv = s.mix + 3 * C, *xa = s.mix + 4 * C,
              *xg = s.mix + 5 * C;  // rows 6C apart
  model_input(x, m, r, s.h);  // h [n, C], ln0 already applied
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];
    float* v = l == 0 ? s.v_first : s.v;  // layer 0's values are kept for the value residual

    // Time mixing: token shift x* = u + (previous u - u) mix*, then r, k, v, decay, gates.
    op.layernorm(x, s.h, L.ln1_w.f32(), L.ln1_b.f32(), s.u, n, C, p.norm_eps);
    op.token_shift(x, state(r, L.att_shift), s.u, L.att_mix.f32(), nullptr, 0, 6, s.mix, C6, n, C, true);
    op.matmul(x, L.W_r, xr, C6, s.r, C, n);
    op.matmul(x, L.W_k, xk, C6, s.k, C, n);
    op.matmul(x, L.W_v, xv, C6, v, C, n);
    lora(x, L.w1, L.w2, L.w0.f32(), xw, C6, &kTanh, s.low, s.w, n);
    op.act(x, Act::kRwkv7Decay, s.w, n * C);  // w = exp(-e^-0.5 sigmoid(w0 + w2 tanh(w1 xw)))
    if (l > 0) {  // value residual: v += (v_first - v) sigmoid(v0 + v2 v1 xv)
      lora(x, L.v1, L.v2, L.v0.f32(), xv, C6, nullptr, s.low, s.o, n);
      op.act(x, Act::kSigmoid, s.o, n * C);
      op.lerp(x, v, s.v_first, s.o, n * C);
    }
    lora(x, L.a1, L.a2, L.a0.f32(), xa, C6, nullptr, s.low, s.a, n);
    op.act(x, Act::kSigmoid, s.a, n * C);  // a = sigmoid(a0 + a2 a1 xa)
    lora(x, L.g1, L.g2, nullptr, xg, C6, &kSigmoid, s.low, s.g, n);  // g = g2 sigmoid(g1 xg)
    op.wkv7_keys(x, s.k, s.a, L.k_k.f32(), L.k_a.f32(), s.na, s.b, n, H, N);  // k adjusted; -kk, kk a
    op.wkv(x, state(r, L.wkv), s.r, s.w, s.k, v, s.na, s.b, s.y, n, H, N, N, false, s.wkv_work);  // y [n, C]
    op.group_norm(x, s.y, L.lnx_w.f32(), L.lnx_b.f32(), n, H, N, p.gn_eps);
    op.wkv7_bonus(x, s.y, s.r, s.k, L.r_k.f32(), v, n, H, N);
    op.mul(x, s.y, s.g, n * C);
    op.matmul(x, L.W_o, s.y, C, s.o, C, n);
    op.add(x, s.h, s.o, n * C);

    // Channel mixing: h += W_value relu(W_key (u + (previous u - u) ffn_mix))^2.
    op.layernorm(x, s.h, L.ln2_w.f32(), L.ln2_b.f32(), s.u, n, C, p.norm_eps);
    op.token_shift(x, state(r, L.ffn_shift), s.u, L.ffn_mix.f32(), nullptr, 0, 1, s.u, C, n, C, true);
    op.matmul(x, L.ffn_key, s.u, C, s.ffn, F, n);
    op.act(x, Act::kReluSq, s.ffn, n * F);
    op.matmul(x, L.ffn_value, s.ffn, F, s.o, C, n);
    op.add(x, s.h, s.o, n * C);
  }
  lm_head(x, m, r, s.h, s.u, C, p.norm_eps, arch.g.norm_f_bias.f32());
}

}  // namespace

const Architecture kRwkv7 = architecture<Spec, kScratch>(forward);

}  // namespace rill
