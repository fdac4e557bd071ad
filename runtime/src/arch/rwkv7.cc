// RWKV-7 "Goose" (architectures.md section 3): binding of the file's tensors and the per-token step.
//
// Notation: C = d_model = H * N (H heads of head_size N), F = d_ffn, LoRA ranks Dw, Da, Dv, Dg.
// Persistent state per layer: att_shift [C] (previous LN1 output), ffn_shift [C] (previous LN2
// output), wkv [H, N, N] (S[h][i][j], i value, j key), f32. The embedding LayerNorm (ln0) was folded
// into the embedding rows by the converter.
#include "arch/arch.h"

namespace rill {
namespace {

struct Rwkv7Hyper {
  uint32_t d_model, n_layer, vocab, head_size, n_heads, d_ffn, rank_w, rank_a, rank_v, rank_g;
  float norm_eps, gn_eps;
  uint32_t max_rank() const {
    uint32_t m = rank_w > rank_a ? rank_w : rank_a;
    m = m > rank_v ? m : rank_v;
    return m > rank_g ? m : rank_g;
  }
};

struct Rwkv7Layer {
  TensorView ln1_w, ln1_b, ln2_w, ln2_b;  // [C] f32
  TensorView att_mix;                      // [6, C] f32, token-shift mix for r, w, k, v, a, g
  TensorView w0, w1, w2;                   // decay LoRA: [C], [Dw, C], [C, Dw]
  TensorView a0, a1, a2;                   // in-context learning rate LoRA: [C], [Da, C], [C, Da]
  TensorView v0, v1, v2;                   // value-residual LoRA (absent in layer 0): [C], [Dv, C], [C, Dv]
  TensorView g1, g2;                       // output gate LoRA: [Dg, C], [C, Dg]
  TensorView k_k, k_a, r_k;                // [C] f32
  TensorView W_r, W_k, W_v, W_o;           // [C, C]
  TensorView lnx_w, lnx_b;                 // [C] f32, GroupNorm of the wkv output
  TensorView ffn_mix;                      // [C] f32
  TensorView ffn_key, ffn_value;           // [F, C], [C, F]
};

struct Rwkv7 {
  Rwkv7Hyper p;
  TensorView norm_f_bias;  // [C] f32
  Rwkv7Layer* layers;      // [n_layer]
};

// Activations of a pass over n rows, each buffer [n, ...], kAlign-aligned.
constexpr size_t kBuffers = 16;
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
};

size_t scratch_layout(const Rwkv7Hyper& p, size_t n, unsigned char* base, Scratch* s) {
  const size_t C = n * p.d_model;
  const size_t sizes[kBuffers] = {C, C, 6 * C, C, C, C, C, C, C, C, C, C, C, C, n * p.max_rank(), n * p.d_ffn};
  float* q[kBuffers];
  const size_t bytes = carve_floats(base, sizes, kBuffers, q);
  if (s)
    *s = Scratch{q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10], q[11], q[12], q[13], q[14], q[15]};
  return bytes;
}

size_t scratch_bytes(const ModelImpl& m, size_t max_rows) {
  return scratch_layout(static_cast<const Rwkv7*>(m.arch_data)->p, max_rows, nullptr, nullptr);
}

// Hyper-parameters in range and consistent, before anything is sized from them.
Status check_params(const fb::Rwkv7Params* p, Error* err) {
  if (!p) return fail(err, Status::kCorrupt, "rwkv7 hyper-parameters are missing");
  const RangeCheck ranges[] = {
      {"d_model", p->d_model(), 1, 1u << 16},  {"n_layer", p->n_layer(), 1, 1024},
      {"vocab_size", p->vocab_size(), 0, 1u << 22}, {"head_size", p->head_size(), 1, 1024},
      {"n_heads", p->n_heads(), 1, 1u << 16},  {"d_ffn", p->d_ffn(), 1, 1u << 18},
      {"rank_w", p->rank_w(), 1, 4096},        {"rank_a", p->rank_a(), 1, 4096},
      {"rank_v", p->rank_v(), 1, 4096},        {"rank_g", p->rank_g(), 1, 4096}};
  const Status s = check_ranges("rwkv7", ranges, sizeof ranges / sizeof ranges[0], err);
  if (s != Status::kOk) return s;
  if (static_cast<uint64_t>(p->n_heads()) * p->head_size() != p->d_model())
    return fail(err, Status::kCorrupt, "rwkv7 n_heads %u * head_size %u != d_model %u", p->n_heads(), p->head_size(),
                p->d_model());
  if (!(p->norm_eps() > 0.f && p->norm_eps() < 1.f) || !(p->group_norm_eps() > 0.f && p->group_norm_eps() < 1.f))
    return fail(err, Status::kCorrupt, "rwkv7 norm eps %g or group norm eps %g not in (0, 1)",
                static_cast<double>(p->norm_eps()), static_cast<double>(p->group_norm_eps()));
  return Status::kOk;
}

Status view_bytes(const FileView& f, size_t* bytes, Error* err) {
  const fb::Rwkv7Params* p = f.model->params_as_Rwkv7Params();
  const Status s = check_params(p, err);
  if (s != Status::kOk) return s;
  return lm_view_bytes(f, p->n_layer(), sizeof(Rwkv7), sizeof(Rwkv7Layer), 3, bytes, err);
}

// Per-layer state tensors, in file order: att_shift [C], ffn_shift [C], wkv [H, N, N].
void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e) {
  const Rwkv7Hyper& p = static_cast<const Rwkv7*>(m.arch_data)->p;
  static const char* kNames[3] = {"att_shift", "ffn_shift", "wkv"};
  std::snprintf(e->name, sizeof e->name, "layers.%u.%s", i / 3, kNames[i % 3]);
  if (i % 3 < 2) {
    e->ndim = 1, e->shape[0] = p.d_model;
  } else {
    e->ndim = 3, e->shape[0] = p.n_heads, e->shape[1] = p.head_size, e->shape[2] = p.head_size;
  }
}

Status bind(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err) {
  const fb::Rwkv7Params* p = f.model->params_as_Rwkv7Params();  // checked by view_bytes
  Status s;
  auto* arch = reinterpret_cast<Rwkv7*>(mem);
  mem += align_up(sizeof(Rwkv7), kAlign);
  m->arch_data = arch;
  Rwkv7Hyper& h = arch->p;
  h = Rwkv7Hyper{p->d_model(), p->n_layer(), p->vocab_size(), p->head_size(), p->n_heads(), p->d_ffn(),
                 p->rank_w(),  p->rank_a(),  p->rank_v(),     p->rank_g(),    p->norm_eps(), p->group_norm_eps()};
  const uint64_t C = h.d_model, F = h.d_ffn, V = h.vocab;
  if (f.model->io() && f.model->io()->input() != fb::IoKind::Tokens)  // ln0 is folded into the embedding rows
    return fail(err, Status::kUnsupported, "rwkv7 with vector input is not supported");
  if ((s = bind_lm_tensors(f, m, V, C, /*tied=*/false, err, /*n_extra=*/1)) != Status::kOk) return s;
  if ((s = bind_tensor(f, find_tensor(f.model->tensors(), "norm_f_bias"), "norm_f_bias", {C}, {DType::kF32},
                       &arch->norm_f_bias, err)) != Status::kOk)
    return s;
  arch->layers = reinterpret_cast<Rwkv7Layer*>(mem);
  auto* slots = reinterpret_cast<StateSlot*>(mem + align_up(h.n_layer * sizeof(Rwkv7Layer), kAlign));
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    Rwkv7Layer& L = arch->layers[i];
    L = Rwkv7Layer{};
    const bool v_lora = i > 0;
    const uint64_t Dw = h.rank_w, Da = h.rank_a, Dv = h.rank_v, Dg = h.rank_g;
    const LayerSpec specs[] = {
        {"ln1_w", &L.ln1_w, {C}, false, false},      {"ln1_b", &L.ln1_b, {C}, false, false},
        {"ln2_w", &L.ln2_w, {C}, false, false},      {"ln2_b", &L.ln2_b, {C}, false, false},
        {"att_mix", &L.att_mix, {6, C}, false, false},
        {"w0", &L.w0, {C}, false, false},            {"w1", &L.w1, {Dw, C}, true, false},
        {"w2", &L.w2, {C, Dw}, true, false},        {"a0", &L.a0, {C}, false, false},
        {"a1", &L.a1, {Da, C}, true, false},        {"a2", &L.a2, {C, Da}, true, false},
        {"v0", &L.v0, {C}, false, !v_lora},          {"v1", &L.v1, {Dv, C}, true, !v_lora},
        {"v2", &L.v2, {C, Dv}, true, !v_lora},      {"g1", &L.g1, {Dg, C}, true, false},
        {"g2", &L.g2, {C, Dg}, true, false},        {"k_k", &L.k_k, {C}, false, false},
        {"k_a", &L.k_a, {C}, false, false},          {"r_k", &L.r_k, {C}, false, false},
        {"W_r", &L.W_r, {C, C}, true, false},        {"W_k", &L.W_k, {C, C}, true, false},
        {"W_v", &L.W_v, {C, C}, true, false},        {"W_o", &L.W_o, {C, C}, true, false},
        {"lnx_w", &L.lnx_w, {C}, false, false},      {"lnx_b", &L.lnx_b, {C}, false, false},
        {"ffn_mix", &L.ffn_mix, {C}, false, false},  {"ffn_key", &L.ffn_key, {F, C}, true, false},
        {"ffn_value", &L.ffn_value, {C, F}, true, false},
    };
    if ((s = bind_layer(f, i, fb::LayerKind::Rwkv7Block, specs, sizeof specs / sizeof specs[0], err)) != Status::kOk)
      return s;
    if (v_lora && !L.v0) return fail(err, Status::kCorrupt, "layer %u lacks the value-residual LoRA", i);
  }
  return finish_bind(f, m, expect_state, 3 * h.n_layer, slots, h.d_model, h.n_layer, h.vocab, err);
}

// Out [n, up.rows()] = bias + up act(down X): a LoRA with bottleneck `low` [n, down.rows()]. X rows ldx
// apart; bias may be null.
void lora(const Exec& x, const TensorView& down, const TensorView& up, const float* bias, const float* X, size_t ldx,
          const Act* act, float* low, float* out, size_t n) {
  const Ops& op = *x.backend->ops;
  const size_t r = down.rows(), C = up.rows();
  op.matmul(x, down, X, ldx, low, r, n);
  if (act) op.act(x, *act, low, n * r);
  op.matmul(x, up, low, r, out, C, n);
  if (bias) op.add_bias(x, out, bias, n, C);
}

// n rows through the whole model: the products over all rows at once; token shifts and wkv7 advance
// each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Rwkv7& arch = *static_cast<const Rwkv7*>(m.arch_data);
  const Rwkv7Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, C = p.d_model, H = p.n_heads, N = p.head_size, F = p.d_ffn, C6 = 6 * C;
  static constexpr Act kTanh = Act::kTanh, kSigmoid = Act::kSigmoid;
  Scratch s;  // each buffer [n, ...]
  scratch_layout(p, n, x.scratch, &s);
  const float *xr = s.mix, *xw = s.mix + C, *xk = s.mix + 2 * C, *xv = s.mix + 3 * C, *xa = s.mix + 4 * C,
              *xg = s.mix + 5 * C;  // rows 6C apart
  model_input(x, m, r, s.h);  // h [n, C], ln0 already applied
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Rwkv7Layer& L = arch.layers[l];
    const StateRef att_shift = state_ref(m, r, 3 * l);  // [C]
    const StateRef ffn_shift = state_ref(m, r, 3 * l + 1);  // [C]
    const StateRef wkv = state_ref(m, r, 3 * l + 2);  // [H, N, N]
    float* v = l == 0 ? s.v_first : s.v;  // layer 0's values are kept for the value residual

    // Time mixing: token shift x* = u + (previous u - u) mix*, then r, k, v, decay, gates.
    op.layernorm(x, s.h, L.ln1_w.f32(), L.ln1_b.f32(), s.u, n, C, p.norm_eps);
    op.token_shift(x, att_shift, s.u, L.att_mix.f32(), 6, s.mix, C6, n, C);
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
    op.wkv7(x, wkv, s.r, s.w, s.k, v, s.na, s.b, s.y, n, H, N);  // y [n, C]
    op.group_norm(x, s.y, L.lnx_w.f32(), L.lnx_b.f32(), n, H, N, p.gn_eps);
    op.wkv7_bonus(x, s.y, s.r, s.k, L.r_k.f32(), v, n, H, N);
    op.mul(x, s.y, s.g, n * C);
    op.matmul(x, L.W_o, s.y, C, s.o, C, n);
    op.add(x, s.h, s.o, n * C);

    // Channel mixing: h += W_value relu(W_key (u + (previous u - u) ffn_mix))^2.
    op.layernorm(x, s.h, L.ln2_w.f32(), L.ln2_b.f32(), s.u, n, C, p.norm_eps);
    op.token_shift(x, ffn_shift, s.u, L.ffn_mix.f32(), 1, s.u, C, n, C);
    op.matmul(x, L.ffn_key, s.u, C, s.ffn, F, n);
    op.act(x, Act::kReluSq, s.ffn, n * F);
    op.matmul(x, L.ffn_value, s.ffn, F, s.o, C, n);
    op.add(x, s.h, s.o, n * C);
  }
  lm_head(x, m, r, s.h, s.u, C, p.norm_eps, arch.norm_f_bias.f32());
}

}  // namespace

const ArchOps kRwkv7Ops = {Arch::kRwkv7, view_bytes, bind, scratch_bytes, forward};

}  // namespace rill
