// RWKV-6 "Finch" (docs/architectures.md, RWKV-6): the forward pass. What the file holds: arch/rwkv6.h.
//
// C = d_model = H * N (H heads of head_size N), F = d_ffn, Dm the token-shift LoRA's rank. The
// embedding LayerNorm (ln0) was folded into the embedding rows by the converter.
#include "arch/bind.h"
#include "arch/rwkv6.h"

namespace rill {
namespace {

using Spec = spec::Rwkv6;
using Hyper = Spec::Hyper;

// Activations of a pass over n rows, each buffer [n, width].
struct Scratch {
  float* h;    // [C] residual stream
  float* u;    // [C] LayerNorm output
  float* xx;   // [C] the input of the token-shift LoRA: u + (previous u - u) maa_x
  float* dm;   // [5C] the LoRA's data-dependent mixes of w, k, v, r, g
  float* mix;  // [5C] token-shifted inputs xw, xk, xv, xr, xg (channel mixing: xk, xr)
  float* r;    // [C]
  float* k;    // [C]
  float* v;    // [C]
  float* w;    // [C] decay
  float* g;    // [C] output gate
  float* y;    // [C]
  float* o;    // [C]
  float* low;  // [max rank] LoRA bottleneck
  float* ffn;  // [F]
  float* wkv_work;  // the chunked wkv's scratch (arch.h, wkv_work)
};
using spec::rwkv6::C, spec::rwkv6::F, spec::rwkv6::H;
constexpr Buffer<Hyper, Scratch> kScratch[] = {
    {&Scratch::h, C},     {&Scratch::u, C},   {&Scratch::xx, C}, {&Scratch::dm, 5 * C}, {&Scratch::mix, 5 * C},
    {&Scratch::r, C},     {&Scratch::k, C},   {&Scratch::v, C},  {&Scratch::w, C},      {&Scratch::g, C},
    {&Scratch::y, C},     {&Scratch::o, C},   {&Scratch::low, &Hyper::max_rank},        {&Scratch::ffn, F},
    {.f32 = &Scratch::wkv_work, .width = wkv_work(C, C, H), .per_row = false, .chunked = true}};

// n rows through the whole model: the products over all rows at once; token shifts and wkv advance
// each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Bound<Spec>& arch = bound<Spec>(m);
  const Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, C = p.d_model, H = p.n_heads, N = p.head_size, F = p.d_ffn, Dm = p.rank_mix, C5 = 5 * C;
  static constexpr Act kTanh = Act::kTanh;
  Scratch s;  // each buffer [n, ...]
  carve(kScratch, p, n, x.scratch, &s, x.chunked_prefill);
  const float *xw = s.mix, *xk = s.mix + C, *xv = s.mix + 2 * C, *xr = s.mix + 3 * C, *xg = s.mix + 4 * C;
  model_input(x, m, r, s.h);  // h [n, C], ln0 already applied
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Spec::Layer& L = arch.layers[l];

    // Time mixing. The token shift's mixes are data-dependent: a LoRA of u + (previous u - u) maa_x
    // gives one mix per input, x* = u + (previous u - u) (maa* + LoRA*).
    op.layernorm(x, s.h, L.ln1_w.f32(), L.ln1_b.f32(), s.u, n, C, p.norm_eps);
    op.token_shift(x, state(r, L.att_shift), s.u, L.maa_x.f32(), nullptr, 0, 1, s.xx, C, n, C, false);
    op.matmul(x, L.maa_w1, s.xx, C, s.low, 5 * Dm, n);  // [n, 5 Dm]
    op.act(x, Act::kTanh, s.low, n * 5 * Dm);
    for (size_t j = 0; j < 5; ++j) op.matmul(x, L.maa_w2.row_block(j * C, C), s.low + j * Dm, 5 * Dm, s.dm + j * C, C5, n);
    op.token_shift(x, state(r, L.att_shift), s.u, L.maa.f32(), s.dm, C5, 5, s.mix, C5, n, C, true);
    op.matmul(x, L.W_r, xr, C5, s.r, C, n);
    op.matmul(x, L.W_k, xk, C5, s.k, C, n);
    op.matmul(x, L.W_v, xv, C5, s.v, C, n);
    op.matmul(x, L.W_g, xg, C5, s.g, C, n);
    op.act(x, Act::kSilu, s.g, n * C);
    lora(x, L.decay_w1, L.decay_w2, L.decay.f32(), xw, C5, &kTanh, s.low, s.w, n);
    op.act(x, Act::kExpNegExp, s.w, n * C);  // w = exp(-exp(decay + w2 tanh(w1 xw)))
    // y = S r over the state before this token, plus the bonus (sum_j r_j u_j k_j) v; then S = w S + v k^T.
    op.wkv(x, state(r, L.wkv), s.r, s.w, s.k, s.v, nullptr, nullptr, s.y, n, H, N, N, true, s.wkv_work);
    op.wkv7_bonus(x, s.y, s.r, s.k, L.bonus.f32(), s.v, n, H, N);
    op.group_norm(x, s.y, L.lnx_w.f32(), L.lnx_b.f32(), n, H, N, p.gn_eps);
    op.mul(x, s.y, s.g, n * C);
    op.matmul(x, L.W_o, s.y, C, s.o, C, n);
    op.add(x, s.h, s.o, n * C);

    // Channel mixing: h += sigmoid(W_r xr) * W_value relu(W_key xk)^2.
    op.layernorm(x, s.h, L.ln2_w.f32(), L.ln2_b.f32(), s.u, n, C, p.norm_eps);
    op.token_shift(x, state(r, L.ffn_shift), s.u, L.ffn_maa.f32(), nullptr, 0, 2, s.mix, 2 * C, n, C, true);
    op.matmul(x, L.ffn_key, s.mix, 2 * C, s.ffn, F, n);
    op.act(x, Act::kReluSq, s.ffn, n * F);
    op.matmul(x, L.ffn_value, s.ffn, F, s.o, C, n);
    op.matmul(x, L.ffn_r, s.mix + C, 2 * C, s.r, C, n);
    op.act(x, Act::kSigmoid, s.r, n * C);
    op.mul(x, s.o, s.r, n * C);
    op.add(x, s.h, s.o, n * C);
  }
  lm_head(x, m, r, s.h, s.u, C, p.norm_eps, arch.g.norm_f_bias.f32());
}

}  // namespace

const Architecture kRwkv6 = architecture<Spec, kScratch>(forward);

}  // namespace rill
