// Mamba-2 / SSD (architectures.md section 2): binding of the file's tensors and the per-token step.
//
// Notation: d = d_model, E = d_inner = H * P, H heads of head_dim P, G groups sharing B and C,
// N = d_state, K = d_conv, conv_dim = E + 2 G N (the conv covers x, B and C).
// Persistent state per layer: conv history [K-1, conv_dim] (oldest first), SSM state [H, P, N], f32.
#include "arch/arch.h"

namespace rill {
namespace {

struct Mamba2Hyper {
  uint32_t d_model, n_layer, vocab, d_inner, d_state, d_conv, n_heads, head_dim, n_groups;
  float norm_eps, dt_min, dt_max;
  uint32_t conv_dim() const { return d_inner + 2 * n_groups * d_state; }
  uint32_t in_rows() const { return 2 * d_inner + 2 * n_groups * d_state + n_heads; }
};

struct Mamba2Layer {
  TensorView norm;       // [d] f32
  TensorView in_proj;    // [2E + 2GN + H, d]  rows: z (E), x (E), B (GN), C (GN), dt (H)
  TensorView conv_w;     // [K, conv_dim] f32
  TensorView conv_b;     // [conv_dim] f32, optional
  TensorView dt_b;       // [H] f32
  TensorView A;          // [H] f32, = -exp(A_log)
  TensorView D;          // [E] f32 (per-head D repeated over head_dim by the converter)
  TensorView gate_norm;  // [E] f32, gated RMSNorm weight
  TensorView out_proj;   // [d, E]
};

struct Mamba2 {
  Mamba2Hyper p;
  Mamba2Layer* layers;  // [n_layer]
};

// Activations of a pass over n rows, each buffer [n, ...], kAlign-aligned.
struct Scratch {
  float* h;       // [d]   residual stream
  float* u;       // [d]   normed input
  float* zxbcdt;  // [2E + 2GN + H]
  float* xbc;     // [conv_dim] conv output (after silu): x, B, C
  float* dt;      // [H]
  float* y;       // [E]
  float* o;       // [d]
};

size_t scratch_layout(const Mamba2Hyper& p, size_t n, unsigned char* base, Scratch* s) {
  const size_t sizes[] = {n * p.d_model,  n * p.d_model, n * p.in_rows(), n * p.conv_dim(),
                          n * p.n_heads, n * p.d_inner, n * p.d_model};
  float* ptrs[7];
  const size_t bytes = carve_floats(base, sizes, 7, ptrs);
  if (s) *s = Scratch{ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6]};
  return bytes;
}

size_t scratch_bytes(const ModelImpl& m, size_t max_rows) {
  return scratch_layout(static_cast<const Mamba2*>(m.arch_data)->p, max_rows, nullptr, nullptr);
}

// Hyper-parameters in range and consistent, before anything is sized from them.
Status check_params(const fb::Mamba2Params* p, Error* err) {
  if (!p) return fail(err, Status::kCorrupt, "mamba2 hyper-parameters are missing");
  const RangeCheck ranges[] = {
      {"d_model", p->d_model(), 1, 1u << 16},   {"n_layer", p->n_layer(), 1, 1024},
      {"vocab_size", p->vocab_size(), 0, 1u << 22}, {"d_state", p->d_state(), 1, 1024},
      {"d_conv", p->d_conv(), 2, 64},           {"n_heads", p->n_heads(), 1, 1u << 12},
      {"head_dim", p->head_dim(), 1, 1u << 12}, {"n_groups", p->n_groups(), 1, p->n_heads()},
      {"d_inner", p->d_inner(), 1, 1u << 18}};
  const Status s = check_ranges("mamba2", ranges, sizeof ranges / sizeof ranges[0], err);
  if (s != Status::kOk) return s;
  if (p->d_inner() != p->n_heads() * p->head_dim() || p->n_heads() % p->n_groups() != 0)
    return fail(err, Status::kCorrupt, "mamba2 d_inner %u != n_heads %u * head_dim %u, or heads not a multiple of groups %u",
                p->d_inner(), p->n_heads(), p->head_dim(), p->n_groups());
  if (!(p->norm_eps() > 0.f && p->norm_eps() < 1.f) || !(p->dt_min() >= 0.f) || !(p->dt_max() > p->dt_min()))
    return fail(err, Status::kCorrupt, "mamba2 norm_eps %g or dt limits [%g, %g] are not sane",
                static_cast<double>(p->norm_eps()), static_cast<double>(p->dt_min()), static_cast<double>(p->dt_max()));
  return Status::kOk;
}

Status view_bytes(const FileView& f, size_t* bytes, Error* err) {
  const fb::Mamba2Params* p = f.model->params_as_Mamba2Params();
  const Status s = check_params(p, err);
  if (s != Status::kOk) return s;
  return lm_view_bytes(f, p->n_layer(), sizeof(Mamba2), sizeof(Mamba2Layer), 2, bytes, err);
}

// Per-layer state tensors, in file order: layers.i.conv [K-1, conv_dim], layers.i.ssm [H, P, N].
void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e) {
  const Mamba2Hyper& p = static_cast<const Mamba2*>(m.arch_data)->p;
  const bool conv = (i % 2) == 0;
  std::snprintf(e->name, sizeof e->name, conv ? "layers.%u.conv" : "layers.%u.ssm", i / 2);
  if (conv) {
    e->ndim = 2, e->shape[0] = p.d_conv - 1, e->shape[1] = p.conv_dim();
  } else {
    e->ndim = 3, e->shape[0] = p.n_heads, e->shape[1] = p.head_dim, e->shape[2] = p.d_state;
  }
}

Status bind(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err) {
  const fb::Mamba2Params* p = f.model->params_as_Mamba2Params();  // checked by view_bytes
  Status s;
  auto* arch = reinterpret_cast<Mamba2*>(mem);
  mem += align_up(sizeof(Mamba2), kAlign);
  m->arch_data = arch;
  Mamba2Hyper& h = arch->p;
  h = Mamba2Hyper{p->d_model(), p->n_layer(), p->vocab_size(), p->d_inner(),  p->d_state(), p->d_conv(),
                  p->n_heads(), p->head_dim(), p->n_groups(), p->norm_eps(), p->dt_min(),  p->dt_max()};
  const uint64_t d = h.d_model, E = h.d_inner, K = h.d_conv, H = h.n_heads, C = h.conv_dim(), V = h.vocab;
  if ((s = bind_lm_tensors(f, m, V, d, p->tied_head(), err)) != Status::kOk) return s;
  arch->layers = reinterpret_cast<Mamba2Layer*>(mem);
  auto* slots = reinterpret_cast<StateSlot*>(mem + align_up(h.n_layer * sizeof(Mamba2Layer), kAlign));
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    Mamba2Layer& L = arch->layers[i];
    L = Mamba2Layer{};
    const LayerSpec specs[] = {
        {"norm", &L.norm, {d}, false, false},
        {"in_proj", &L.in_proj, {h.in_rows(), d}, true, false},
        {"conv_weight", &L.conv_w, {K, C}, false, false},
        {"conv_bias", &L.conv_b, {C}, false, !p->conv_bias()},
        {"dt_bias", &L.dt_b, {H}, false, false},
        {"A", &L.A, {H}, false, false},
        {"D", &L.D, {E}, false, false},
        {"gate_norm", &L.gate_norm, {E}, false, false},
        {"out_proj", &L.out_proj, {d, E}, true, false},
    };
    if ((s = bind_layer(f, i, fb::LayerKind::Mamba2Mixer, specs, sizeof specs / sizeof specs[0], err)) != Status::kOk)
      return s;
  }
  return finish_bind(f, m, expect_state, 2 * h.n_layer, slots, h.d_model, h.n_layer, h.vocab, err);
}

// n rows through the whole model: the products over all rows at once; conv and the SSD step advance
// each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Mamba2& arch = *static_cast<const Mamba2*>(m.arch_data);
  const Mamba2Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, E = p.d_inner, N = p.d_state, H = p.n_heads, G = p.n_groups, K = p.d_conv;
  const size_t C = p.conv_dim(), IN = p.in_rows();
  Scratch s;  // each buffer [n, ...]
  scratch_layout(p, n, x.scratch, &s);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Mamba2Layer& L = arch.layers[l];
    const StateRef conv = state_ref(m, r, 2 * l);  // [K-1, conv_dim]
    const StateRef ssm = state_ref(m, r, 2 * l + 1);  // [H, P, N]
    op.rmsnorm(x, s.h, L.norm.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    op.matmul(x, L.in_proj, s.u, d, s.zxbcdt, IN, n);  // [n, z (E) | xBC (conv_dim) | dt (H)]
    op.conv_step(x, conv, L.conv_w.f32(), L.conv_b ? L.conv_b.f32() : nullptr, s.zxbcdt + E, IN, s.xbc, n, C,
                 K, true);  // xbc [n, conv_dim] = silu(conv xBC): x [H, P], B [G, N], C [G, N]
    op.softplus_dt(x, s.zxbcdt + E + C, IN, L.dt_b.f32(), s.dt, n, H, p.dt_min, p.dt_max);  // dt [n, H], clamped
    op.ssd_step(x, ssm, s.xbc, s.xbc + E, s.xbc + E + G * N, C, s.dt, L.A.f32(), L.D.f32(), s.y, n, H, p.head_dim, N,
                G);  // y [n, E]
    op.gated_rmsnorm(x, s.y, s.zxbcdt, IN, L.gate_norm.f32(), n, E, G, p.norm_eps);  // y = norm(y silu(z))
    op.matmul(x, L.out_proj, s.y, E, s.o, d, n);  // o [n, d]
    op.add(x, s.h, s.o, n * d);  // residual
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const ArchOps kMamba2Ops = {Arch::kMamba2, view_bytes, bind, scratch_bytes, forward};

}  // namespace rill
