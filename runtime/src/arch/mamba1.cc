// Mamba-1 (architectures.md section 1): binding of the file's tensors and the per-token step.
//
// Notation: d = d_model, E = d_inner, N = d_state, K = d_conv, R = dt_rank, V = vocab.
// Persistent state per layer: conv history [K-1, E] (oldest first) and SSM state [N, E], f32
// (state-dim-major: channels are contiguous, so the scan vectorises across channels).
#include <cmath>

#include "arch/arch.h"

namespace rill {
namespace {

struct Mamba1Hyper {
  uint32_t d_model, n_layer, vocab, d_inner, d_state, d_conv, dt_rank;
  float norm_eps;
};

// Per-layer weights of a Mamba-1 block. Shapes in rill's layout.
struct Mamba1Layer {
  TensorView norm;        // [d] f32
  TensorView in_proj;     // [2E, d]   rows 0..E-1 = x, E..2E-1 = z
  TensorView in_proj_b;   // [2E] f32, optional
  TensorView conv_w;      // [K, E] f32 (transposed from the checkpoint's [E, 1, K])
  TensorView conv_b;      // [E] f32, optional
  TensorView x_proj;      // [R + 2N, E] rows: dt_low, B, C
  TensorView dt_proj;     // [E, R]
  TensorView dt_b;        // [E] f32
  TensorView A;           // [N, E] f32, = -exp(A_log) transposed, precomputed by the converter
  TensorView D;           // [E] f32
  TensorView out_proj;    // [d, E]
  TensorView out_proj_b;  // [d] f32, optional
};

struct Mamba1 {
  Mamba1Hyper p;
  Mamba1Layer* layers;  // [n_layer]
};

constexpr uint32_t kMaxDim = 1u << 16;
constexpr uint32_t kMaxVocab = 1u << 22;
constexpr uint32_t kMaxLayers = 1024;

// Activations of a pass over n rows, each buffer [n, ...], kAlign-aligned.
struct Scratch {
  float* h;    // [d]   residual stream
  float* u;    // [d]   normed input
  float* xz;   // [2E]  in_proj output: x then z
  float* xc;   // [E]   conv output (after silu)
  float* dbc;  // [R + 2N]
  float* dt;   // [E]
  float* y;    // [E]
  float* o;    // [d]   out_proj output
};

size_t scratch_layout(const Mamba1Hyper& p, size_t n, unsigned char* base, Scratch* s) {
  const size_t sizes[] = {n * p.d_model, n * p.d_model, n * 2ull * p.d_inner, n * p.d_inner,
                          n * (p.dt_rank + 2ull * p.d_state), n * p.d_inner, n * p.d_inner, n * p.d_model};
  float* ptrs[8];
  const size_t bytes = carve_floats(base, sizes, 8, ptrs);
  if (s) *s = Scratch{ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6], ptrs[7]};
  return bytes;
}

size_t scratch_bytes(const ModelImpl& m, size_t max_rows) {
  return scratch_layout(static_cast<const Mamba1*>(m.arch_data)->p, max_rows, nullptr, nullptr);
}

// Hyper-parameters in range and consistent, before anything is sized from them.
Status check_params(const fb::Mamba1Params* p, Error* err) {
  if (!p) return fail(err, Status::kCorrupt, "mamba1 hyper-parameters are missing");
  const RangeCheck ranges[] = {
      {"d_model", p->d_model(), 1, kMaxDim},         {"n_layer", p->n_layer(), 1, kMaxLayers},
      {"vocab_size", p->vocab_size(), 0, kMaxVocab}, {"d_inner", p->d_inner(), 1, 4 * kMaxDim},
      {"d_state", p->d_state(), 1, 1024},            {"d_conv", p->d_conv(), 2, 64},
      {"dt_rank", p->dt_rank(), 1, kMaxDim}};
  const Status s = check_ranges("mamba1", ranges, sizeof ranges / sizeof ranges[0], err);
  if (s != Status::kOk) return s;
  if (!(p->norm_eps() > 0.f && p->norm_eps() < 1.f))
    return fail(err, Status::kCorrupt, "mamba1 norm_eps = %g is not in (0, 1)", static_cast<double>(p->norm_eps()));
  return Status::kOk;
}

Status view_bytes(const FileView& f, size_t* bytes, Error* err) {
  const fb::Mamba1Params* p = f.model->params_as_Mamba1Params();
  const Status s = check_params(p, err);
  if (s != Status::kOk) return s;
  return lm_view_bytes(f, p->n_layer(), sizeof(Mamba1), sizeof(Mamba1Layer), 2, bytes, err);
}

void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e);

Status bind(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err) {
  const fb::Mamba1Params* p = f.model->params_as_Mamba1Params();  // checked by view_bytes
  Status s;
  auto* arch = reinterpret_cast<Mamba1*>(mem);
  mem += align_up(sizeof(Mamba1), kAlign);
  m->arch_data = arch;
  Mamba1Hyper& h = arch->p;
  h = Mamba1Hyper{p->d_model(), p->n_layer(), p->vocab_size(), p->d_inner(), p->d_state(),
                  p->d_conv(),  p->dt_rank(), p->norm_eps()};
  const uint64_t d = h.d_model, E = h.d_inner, N = h.d_state, K = h.d_conv, R = h.dt_rank, V = h.vocab;
  if ((s = bind_lm_tensors(f, m, V, d, p->tied_head(), err)) != Status::kOk) return s;
  arch->layers = reinterpret_cast<Mamba1Layer*>(mem);
  auto* slots = reinterpret_cast<StateSlot*>(mem + align_up(h.n_layer * sizeof(Mamba1Layer), kAlign));
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    Mamba1Layer& L = arch->layers[i];
    L = Mamba1Layer{};
    const LayerSpec specs[] = {
        {"norm", &L.norm, {d}, false, false},
        {"in_proj", &L.in_proj, {2 * E, d}, true, false},
        {"in_proj_bias", &L.in_proj_b, {2 * E}, false, !p->in_proj_bias()},
        {"conv_weight", &L.conv_w, {K, E}, false, false},
        {"conv_bias", &L.conv_b, {E}, false, !p->conv_bias()},
        {"x_proj", &L.x_proj, {R + 2 * N, E}, true, false},
        {"dt_proj", &L.dt_proj, {E, R}, true, false},
        {"dt_bias", &L.dt_b, {E}, false, false},
        {"A", &L.A, {N, E}, false, false},
        {"D", &L.D, {E}, false, false},
        {"out_proj", &L.out_proj, {d, E}, true, false},
        {"out_proj_bias", &L.out_proj_b, {d}, false, !p->out_proj_bias()},
    };
    if ((s = bind_layer(f, i, fb::LayerKind::Mamba1Mixer, specs, sizeof specs / sizeof specs[0], err)) != Status::kOk)
      return s;
  }
  return finish_bind(f, m, expect_state, 2 * h.n_layer, slots, h.d_model, h.n_layer, h.vocab, err);
}

// Per-layer state tensors, in file order: layers.i.conv [K-1, E], layers.i.ssm [N, E].
void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e) {
  const Mamba1Hyper& p = static_cast<const Mamba1*>(m.arch_data)->p;
  const bool conv = (i % 2) == 0;
  std::snprintf(e->name, sizeof e->name, conv ? "layers.%u.conv" : "layers.%u.ssm", i / 2);
  e->ndim = 2;
  e->shape[0] = conv ? p.d_conv - 1 : p.d_state;
  e->shape[1] = p.d_inner;
}

// n rows through the whole model. The products take all rows at once (each weight read once per pass);
// conv and scan advance each row's state in row order.
void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const Mamba1& arch = *static_cast<const Mamba1*>(m.arch_data);
  const Mamba1Hyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, d = p.d_model, E = p.d_inner, N = p.d_state, R = p.dt_rank, K = p.d_conv, DBC = R + 2 * N;
  Scratch s;  // each buffer [n, ...]
  scratch_layout(p, n, x.scratch, &s);
  model_input(x, m, r, s.h);  // h [n, d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Mamba1Layer& L = arch.layers[l];
    const StateRef conv = state_ref(m, r, 2 * l);  // [K-1, E]
    const StateRef ssm = state_ref(m, r, 2 * l + 1);  // [N, E]
    op.rmsnorm(x, s.h, L.norm.f32(), s.u, n, d, p.norm_eps);  // u [n, d]
    op.matmul(x, L.in_proj, s.u, d, s.xz, 2 * E, n);  // xz [n, 2E]: x, then z
    if (L.in_proj_b) op.add_bias(x, s.xz, L.in_proj_b.f32(), n, 2 * E);
    op.conv_step(x, conv, L.conv_w.f32(), L.conv_b ? L.conv_b.f32() : nullptr, s.xz, 2 * E, s.xc, n, E, K,
                 true);  // xc = silu(conv x)
    op.matmul(x, L.x_proj, s.xc, E, s.dbc, DBC, n);  // dbc [n, R + 2N]: dt_low, B, C
    op.matmul(x, L.dt_proj, s.dbc, DBC, s.dt, E, n);  // dt [n, E] from dt_low
    op.softplus_dt(x, s.dt, E, L.dt_b.f32(), s.dt, n, E, -INFINITY, INFINITY);  // bias before softplus, no clamp
    op.ssm_scan(x, ssm, L.A.f32(), s.dt, s.xc, s.dbc + R, s.dbc + R + N, DBC, L.D.f32(), s.xz + E, 2 * E, s.y, n, E,
                N);  // y [n, E], gated by silu(z)
    op.matmul(x, L.out_proj, s.y, E, s.o, d, n);  // o [n, d]
    if (L.out_proj_b) op.add_bias(x, s.o, L.out_proj_b.f32(), n, d);
    op.add(x, s.h, s.o, n * d);  // residual
  }
  lm_head(x, m, r, s.h, s.u, d, p.norm_eps);
}

}  // namespace

const ArchOps kMamba1Ops = {Arch::kMamba1, view_bytes, bind, scratch_bytes, forward};

}  // namespace rill
