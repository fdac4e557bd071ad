// RecurrentGemma / Griffin (architectures.md section 5; transformers `modeling_recurrent_gemma.py`):
// binding of the file's tensors and the per-token step. Layers of two kinds, each followed by a GeGLU MLP:
//   RglruBlock           gelu(W_y u) * RG-LRU(conv(W_x u)), the RG-LRU's gates block-diagonal
//   LocalAttentionBlock  multi-query attention with partial RoPE over the last `window` tokens
//
// Notation: d = d_model, Wl = lru_width, F = d_ffn, H heads of D channels (A = H * D), KV key/value heads,
// K = conv width, R = rotated channels per head. Gemma's RMSNorm weights (1 + w) were made plain by the
// converter, and the RG-LRU's softplus(Λ) precomputed as c = 8 softplus(Λ).
// Persistent state: `position` [1] i64 (tokens seen: RoPE's position, the RG-LRU's reset at 0, the
// ring slot position % window), and per layer either conv [K-1, Wl] + rg_lru [Wl] f32, or the key and
// value ring buffers k_ring, v_ring [window, KV * D] (f32 or f16, Params.kv_dtype).
#include <cmath>

#include "arch/arch.h"

namespace rill {
namespace {

struct GriffinHyper {
  uint32_t d_model, n_layer, vocab, lru, d_ffn, n_heads, n_kv, head_dim, window, conv, rope_dims;
  float rope_theta, norm_eps, soft_cap, embed_scale;
  bool tied, attn_bias, kv_f16;
  uint32_t widest() const {  // the widest per-row activation of a block
    uint32_t m = lru > d_ffn ? lru : d_ffn;
    return m > n_heads * head_dim ? m : n_heads * head_dim;
  }
};

struct GriffinLayer {
  bool attention;
  TensorView norm1, norm2;  // [d] f32: temporal and channel pre-norms (1 + w)
  // RglruBlock
  TensorView lin_y, lin_y_b, lin_x, lin_x_b;  // [Wl, d], [Wl]
  TensorView conv_w, conv_b;                  // [K, Wl] f32 (tap-major), [Wl]
  TensorView gate_x, gate_x_b;                // [Wl, Wl / H] f32 or f16: H blocks, rows [out], cols [in]
  TensorView gate_a, gate_a_b;                // the same, for the recurrence gate
  TensorView lru_c;                           // [Wl] f32: 8 softplus(Λ)
  TensorView lin_out, lin_out_b;              // [d, Wl], [d]
  // LocalAttentionBlock
  TensorView q, k, v, q_b, k_b, v_b;  // [A, d], [KV D, d], [KV D, d] (+ biases when attention_bias)
  TensorView o, o_b;                  // [d, A], [d]
  // MLP
  TensorView gate, gate_b, up, up_b;  // [F, d], [F]
  TensorView down, down_b;            // [d, F], [d]
};

struct Griffin {
  GriffinHyper p;
  GriffinLayer* layers;  // [n_layer]
};

constexpr uint32_t kMaxHeadDim = 512;  // the attention op's per-head buffers

// Activations of a pass over n rows, kAlign-aligned: h, u, o [n, d]; P [n] i64; five block buffers
// [n, widest]; scores [n_heads, window] (attention, one row at a time).
constexpr size_t kBuffers = 10;
struct Scratch {
  float *h, *u, *o;
  int64_t* P;
  float *b1, *b2, *b3, *b4, *b5;
  float* scores;
};

size_t scratch_layout(const GriffinHyper& p, size_t n, unsigned char* base, Scratch* s) {
  const size_t d = n * p.d_model, w = n * size_t{p.widest()};
  const size_t sizes[kBuffers] = {d, d, d, 2 * n, w, w, w, w, w, size_t{p.n_heads} * p.window};
  float* q[kBuffers];
  const size_t bytes = carve_floats(base, sizes, kBuffers, q);
  if (s) *s = Scratch{q[0], q[1], q[2], reinterpret_cast<int64_t*>(q[3]), q[4], q[5], q[6], q[7], q[8], q[9]};
  return bytes;
}

size_t scratch_bytes(const ModelImpl& m, size_t max_rows) {
  return scratch_layout(static_cast<const Griffin*>(m.arch_data)->p, max_rows, nullptr, nullptr);
}

Status check_params(const fb::RecurrentGemmaParams* p, Error* err) {
  if (!p) return fail(err, Status::kCorrupt, "recurrent_gemma hyper-parameters are missing");
  const RangeCheck ranges[] = {
      {"d_model", p->d_model(), 1, 1u << 16},     {"n_layer", p->n_layer(), 1, 1024},
      {"vocab_size", p->vocab_size(), 1, 1u << 22}, {"lru_width", p->lru_width(), 1, 1u << 16},
      {"d_ffn", p->d_ffn(), 1, 1u << 18},         {"n_heads", p->n_heads(), 1, 1024},
      {"n_kv_heads", p->n_kv_heads(), 1, 1024},   {"head_dim", p->head_dim(), 1, kMaxHeadDim},
      {"window", p->window(), 1, 1u << 17},       {"conv_width", p->conv_width(), 1, 64},
      {"rope_dims", p->rope_dims(), 0, kMaxHeadDim}};
  const Status s = check_ranges("recurrent_gemma", ranges, sizeof ranges / sizeof ranges[0], err);
  if (s != Status::kOk) return s;
  if (p->lru_width() % p->n_heads() != 0)
    return fail(err, Status::kCorrupt, "recurrent_gemma lru_width %u is not a multiple of n_heads %u", p->lru_width(),
                p->n_heads());
  if (p->n_heads() % p->n_kv_heads() != 0)
    return fail(err, Status::kCorrupt, "recurrent_gemma n_heads %u is not a multiple of n_kv_heads %u", p->n_heads(),
                p->n_kv_heads());
  if (p->rope_dims() % 2 != 0 || p->rope_dims() > p->head_dim())
    return fail(err, Status::kCorrupt, "recurrent_gemma rope_dims %u is odd or exceeds head_dim %u", p->rope_dims(),
                p->head_dim());
  if (static_cast<uint64_t>(p->n_kv_heads()) * p->head_dim() > (1u << 16))
    return fail(err, Status::kCorrupt, "recurrent_gemma n_kv_heads * head_dim exceeds 65536");
  if (!(p->norm_eps() > 0.f && p->norm_eps() < 1.f))
    return fail(err, Status::kCorrupt, "recurrent_gemma norm eps %g not in (0, 1)", static_cast<double>(p->norm_eps()));
  if (!(p->rope_theta() > 1.f && p->rope_theta() < 1e12f))
    return fail(err, Status::kCorrupt, "recurrent_gemma rope_theta %g not in (1, 1e12)",
                static_cast<double>(p->rope_theta()));
  if (!(p->logits_soft_cap() >= 0.f && p->logits_soft_cap() < 1e6f) || !(p->embed_scale() > 0.f && p->embed_scale() < 1e6f))
    return fail(err, Status::kCorrupt, "recurrent_gemma logits_soft_cap %g or embed_scale %g out of range",
                static_cast<double>(p->logits_soft_cap()), static_cast<double>(p->embed_scale()));
  if (p->kv_dtype() != fb::DType::F32 && p->kv_dtype() != fb::DType::F16)
    return fail(err, Status::kCorrupt, "recurrent_gemma kv_dtype %s is neither f32 nor f16",
                fb::EnumNameDType(p->kv_dtype()));
  return Status::kOk;
}

// Model memory: the struct, the layers, and 1 + 2 n_layer state slots.
Status view_bytes(const FileView& f, size_t* bytes, Error* err) {
  const fb::RecurrentGemmaParams* p = f.model->params_as_RecurrentGemmaParams();
  Status s = check_params(p, err);
  if (s != Status::kOk) return s;
  if ((s = lm_view_bytes(f, p->n_layer(), sizeof(Griffin), sizeof(GriffinLayer), 2, bytes, err)) != Status::kOk)
    return s;
  *bytes += kAlign;  // the position slot (one StateSlot fits in the alignment the slots' region gets)
  return Status::kOk;
}

// State tensors, in file order: position, then two per layer (conv, rg_lru or k_ring, v_ring).
void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e) {
  const Griffin& g = *static_cast<const Griffin*>(m.arch_data);
  const GriffinHyper& p = g.p;
  if (i == 0) {
    std::snprintf(e->name, sizeof e->name, "position");
    e->ndim = 1, e->shape[0] = 1, e->type = StateType::kI64;
    return;
  }
  const uint32_t l = (i - 1) / 2, second = (i - 1) % 2;
  if (g.layers[l].attention) {
    std::snprintf(e->name, sizeof e->name, "layers.%u.%s", l, second ? "v_ring" : "k_ring");
    e->ndim = 2, e->shape[0] = p.window, e->shape[1] = uint64_t{p.n_kv} * p.head_dim;
    e->type = p.kv_f16 ? StateType::kF16 : StateType::kF32;
  } else if (second) {
    std::snprintf(e->name, sizeof e->name, "layers.%u.rg_lru", l);
    e->ndim = 1, e->shape[0] = p.lru;
  } else {
    std::snprintf(e->name, sizeof e->name, "layers.%u.conv", l);
    e->ndim = 2, e->shape[0] = p.conv - 1, e->shape[1] = p.lru;
  }
}

Status bind(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err) {
  const fb::RecurrentGemmaParams* p = f.model->params_as_RecurrentGemmaParams();  // checked by view_bytes
  Status s;
  auto* arch = reinterpret_cast<Griffin*>(mem);
  mem += align_up(sizeof(Griffin), kAlign);
  m->arch_data = arch;
  GriffinHyper& h = arch->p;
  h = GriffinHyper{p->d_model(),    p->n_layer(),   p->vocab_size(), p->lru_width(),      p->d_ffn(),
                   p->n_heads(),    p->n_kv_heads(), p->head_dim(),  p->window(),         p->conv_width(),
                   p->rope_dims(),  p->rope_theta(), p->norm_eps(),  p->logits_soft_cap(), p->embed_scale(),
                   p->tied_head(),  p->attention_bias(), p->kv_dtype() == fb::DType::F16};
  if (f.model->io()) return fail(err, Status::kUnsupported, "recurrent_gemma with vector input or output is not supported");
  if ((s = bind_lm_tensors(f, m, h.vocab, h.d_model, h.tied, err)) != Status::kOk) return s;
  const uint64_t d = h.d_model, Wl = h.lru, F = h.d_ffn, A = uint64_t{h.n_heads} * h.head_dim,
                 KVD = uint64_t{h.n_kv} * h.head_dim, K = h.conv, bw = Wl / h.n_heads;
  arch->layers = reinterpret_cast<GriffinLayer*>(mem);
  auto* slots = reinterpret_cast<StateSlot*>(mem + align_up(h.n_layer * sizeof(GriffinLayer), kAlign));
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    GriffinLayer& L = arch->layers[i];
    L = GriffinLayer{};
    const fb::LayerKind kind = f.model->layers()->Get(i)->kind();
    if (kind != fb::LayerKind::RglruBlock && kind != fb::LayerKind::LocalAttentionBlock)
      return fail(err, Status::kCorrupt, "layer %u has kind %u, not a recurrent_gemma block", i,
                  static_cast<unsigned>(kind));
    L.attention = kind == fb::LayerKind::LocalAttentionBlock;
    const bool nb = !h.attn_bias;
    const LayerSpec common[] = {
        {"norm1", &L.norm1, {d}, false, false},     {"norm2", &L.norm2, {d}, false, false},
        {"gate", &L.gate, {F, d}, true, false},     {"gate_b", &L.gate_b, {F}, false, false},
        {"up", &L.up, {F, d}, true, false},         {"up_b", &L.up_b, {F}, false, false},
        {"down", &L.down, {d, F}, true, false},     {"down_b", &L.down_b, {d}, false, false}};
    const LayerSpec attention[] = {
        {"q", &L.q, {A, d}, true, false},         {"k", &L.k, {KVD, d}, true, false},
        {"v", &L.v, {KVD, d}, true, false},       {"q_b", &L.q_b, {A}, false, nb},
        {"k_b", &L.k_b, {KVD}, false, nb},        {"v_b", &L.v_b, {KVD}, false, nb},
        {"o", &L.o, {d, A}, true, false},         {"o_b", &L.o_b, {d}, false, false}};
    const LayerSpec recurrent[] = {
        {"lin_y", &L.lin_y, {Wl, d}, true, false},     {"lin_y_b", &L.lin_y_b, {Wl}, false, false},
        {"lin_x", &L.lin_x, {Wl, d}, true, false},     {"lin_x_b", &L.lin_x_b, {Wl}, false, false},
        {"conv_weight", &L.conv_w, {K, Wl}, false, false}, {"conv_bias", &L.conv_b, {Wl}, false, false},
        {"gate_x", &L.gate_x, {Wl, bw}, true, false},  {"gate_x_b", &L.gate_x_b, {Wl}, false, false},
        {"gate_a", &L.gate_a, {Wl, bw}, true, false},  {"gate_a_b", &L.gate_a_b, {Wl}, false, false},
        {"lru_c", &L.lru_c, {Wl}, false, false},       {"lin_out", &L.lin_out, {d, Wl}, true, false},
        {"lin_out_b", &L.lin_out_b, {d}, false, false}};
    constexpr size_t nc = sizeof common / sizeof common[0], na = sizeof attention / sizeof attention[0],
                     nr = sizeof recurrent / sizeof recurrent[0];
    LayerSpec specs[nc + nr];
    size_t n = 0;
    for (const LayerSpec& sp : common) specs[n++] = sp;
    if (L.attention)
      for (const LayerSpec& sp : attention) specs[n++] = sp;
    else
      for (const LayerSpec& sp : recurrent) specs[n++] = sp;
    static_assert(na <= nr, "specs holds the larger block");
    if ((s = bind_layer(f, i, kind, specs, n, err)) != Status::kOk) return s;
    // The block-diagonal gates are multiplied a block at a time: float only.
    if (!L.attention && (L.gate_x.dtype == DType::kI8 || L.gate_x.dtype == DType::kI4 ||
                         L.gate_a.dtype == DType::kI8 || L.gate_a.dtype == DType::kI4))
      return fail(err, Status::kUnsupported, "layer %u: quantized RG-LRU gate blocks are not supported (f32 or f16)", i);
  }
  return finish_bind(f, m, expect_state, 1 + 2 * h.n_layer, slots, h.d_model, h.n_layer, h.vocab, err);
}

// Block b of a block-diagonal matrix stored as [blocks * bw, bw] (f32 or f16).
TensorView block(const TensorView& W, uint64_t b) {
  TensorView v = W;
  const uint64_t bw = W.cols();
  v.data = static_cast<const unsigned char*>(W.data) + b * bw * bw * (W.dtype == DType::kF16 ? 2 : 4);
  v.shape[0] = bw;
  return v;
}

// Y = W X + b over n rows (X rows ldx apart, Y [n, W.rows()]).
void linear(const Exec& x, const TensorView& W, const TensorView& b, const float* X, size_t ldx, float* Y, size_t n) {
  const Ops& op = *x.backend->ops;
  op.matmul(x, W, X, ldx, Y, W.rows(), n);
  if (b) op.add_bias(x, Y, b.f32(), n, W.rows());
}

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Griffin& arch = *static_cast<const Griffin*>(m.arch_data);
  const GriffinHyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, Wl = p.lru, F = p.d_ffn, H = p.n_heads, KV = p.n_kv, D = p.head_dim,
               A = H * D, K = p.conv, bw = Wl / H;
  Scratch s;
  scratch_layout(p, n, x.scratch, &s);
  model_input(x, m, r, s.h);                                  // h [n, d]
  if (p.embed_scale != 1.f) op.scale(x, s.h, p.embed_scale, n * d);
  op.positions(x, state_ref(m, r, 0), s.P, n);                // P [n]; the state counts the rows
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const GriffinLayer& L = arch.layers[l];
    const StateRef first = state_ref(m, r, 1 + 2 * l), second = state_ref(m, r, 2 + 2 * l);
    op.rmsnorm(x, s.h, L.norm1.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    if (L.attention) {
      linear(x, L.q, L.q_b, s.u, d, s.b1, n);                 // q [n, A]
      linear(x, L.k, L.k_b, s.u, d, s.b2, n);                 // k [n, KV D]
      linear(x, L.v, L.v_b, s.u, d, s.b3, n);                 // v [n, KV D]
      op.rope(x, s.b1, A, s.P, n, H, D, p.rope_dims, p.rope_theta);
      op.rope(x, s.b2, KV * D, s.P, n, KV, D, p.rope_dims, p.rope_theta);
      op.attend(x, first, second, p.kv_f16, s.b1, s.b2, s.b3, s.P, s.b4, n, H, KV, D, p.window,
                1.f / std::sqrt(static_cast<float>(D)), s.scores);  // b4 [n, A]
      linear(x, L.o, L.o_b, s.b4, A, s.o, n);                 // o [n, d]
    } else {
      linear(x, L.lin_y, L.lin_y_b, s.u, d, s.b1, n);         // y branch [n, Wl]
      op.act(x, Act::kGeluTanh, s.b1, n * Wl);
      linear(x, L.lin_x, L.lin_x_b, s.u, d, s.b2, n);         // x branch [n, Wl]
      op.conv_step(x, first, L.conv_w.f32(), L.conv_b.f32(), s.b2, Wl, s.b3, n, Wl, K, false);  // b3 = conv x
      for (size_t b = 0; b < H; ++b) {                        // block-diagonal gates: b4 input, b5 recurrence
        op.matmul(x, block(L.gate_x, b), s.b3 + b * bw, Wl, s.b4 + b * bw, Wl, n);
        op.matmul(x, block(L.gate_a, b), s.b3 + b * bw, Wl, s.b5 + b * bw, Wl, n);
      }
      op.add_bias(x, s.b4, L.gate_x_b.f32(), n, Wl);
      op.add_bias(x, s.b5, L.gate_a_b.f32(), n, Wl);
      op.rglru(x, second, s.b3, s.b4, s.b5, L.lru_c.f32(), s.P, s.b2, n, Wl);  // b2 = RG-LRU(b3)
      op.mul(x, s.b2, s.b1, n * Wl);
      linear(x, L.lin_out, L.lin_out_b, s.b2, Wl, s.o, n);    // o [n, d]
    }
    op.add(x, s.h, s.o, n * d);
    // MLP: h += down(gelu(gate u) * up u)
    op.rmsnorm(x, s.h, L.norm2.f32(), s.u, n, d, p.norm_eps);
    linear(x, L.gate, L.gate_b, s.u, d, s.b1, n);
    linear(x, L.up, L.up_b, s.u, d, s.b2, n);
    op.act(x, Act::kGeluTanh, s.b1, n * F);
    op.mul(x, s.b1, s.b2, n * F);
    linear(x, L.down, L.down_b, s.b1, F, s.o, n);
    op.add(x, s.h, s.o, n * d);
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
  if (r.logits && r.n_logits && p.soft_cap > 0.f) {  // logits = cap tanh(logits / cap)
    const size_t count = r.n_logits * m.head.rows();
    op.scale(x, r.logits, 1.f / p.soft_cap, count);
    op.act(x, Act::kTanh, r.logits, count);
    op.scale(x, r.logits, p.soft_cap, count);
  }
}

}  // namespace

const ArchOps kRecurrentGemmaOps = {Arch::kRecurrentGemma, view_bytes, bind, scratch_bytes, forward};

}  // namespace rill
