// S4D (architectures.md section 4; state-spaces/s4, models/s4/s4d.py and example.py's S4Model), after
// the converter's zero-order-hold discretization: the runtime only multiplies and adds.
//
// Notation: H = d_model, M = d_state / 2 complex modes per channel. A block, as the authors define it:
//   z = LayerNorm(h) if prenorm else h
//   y = GELU(SSM(z) + D z)                 SSM: s <- Ā s + z, y = 2 Re(C̃ s), per channel and mode
//   h = h + GLU(output_linear(y))          output_linear: a 1x1 conv to 2H (a matrix), GLU over channels
//   h = LayerNorm(h) if not prenorm
// then the running mean over time (pool = mean) and the decoder. Input and output are float vectors
// (encoder / decoder, model-level tensors bound by bind_lm_tensors).
// Persistent state per layer: s [M, 2, H] f32 (real parts, then imaginary parts, of each mode); with
// pool = mean also pool.mean [H] and pool.count [1].
#include <cmath>

#include "arch/arch.h"

namespace rill {
namespace {

struct S4dHyper {
  uint32_t d_model, n_layer, d_state, modes;
  bool prenorm, pool_mean;
  float norm_eps;
};

struct S4dLayer {
  TensorView A;           // [M, 2, H] f32: Ā = exp(dt A)
  TensorView C;           // [M, 2, H] f32: C̃ = C (exp(dt A) - 1) / A
  TensorView D;           // [H] f32
  TensorView out_proj;    // [2H, H] (output_linear's 1x1 conv)
  TensorView out_proj_b;  // [2H] f32
  TensorView norm_w;      // [H] f32
  TensorView norm_b;      // [H] f32
};

struct S4d {
  S4dHyper p;
  S4dLayer* layers;
};

constexpr uint32_t kMaxDim = 1u << 16;

struct Scratch {
  float* h;  // [H]  residual stream
  float* z;  // [H]  block input (normed when prenorm)
  float* y;  // [H]  SSM output
  float* g;  // [2H] output_linear
};

size_t scratch_layout(const S4dHyper& p, size_t n, unsigned char* base, Scratch* s) {
  const size_t H = p.d_model;
  const size_t sizes[] = {n * H, n * H, n * H, n * 2 * H};
  float* ptrs[4];
  const size_t bytes = carve_floats(base, sizes, 4, ptrs);
  if (s) *s = Scratch{ptrs[0], ptrs[1], ptrs[2], ptrs[3]};
  return bytes;
}

size_t scratch_bytes(const ModelImpl& m, size_t max_rows) {
  return scratch_layout(static_cast<const S4d*>(m.arch_data)->p, max_rows, nullptr, nullptr);
}

Status check_params(const fb::S4DParams* p, Error* err) {
  if (!p) return fail(err, Status::kCorrupt, "s4d hyper-parameters are missing");
  const RangeCheck ranges[] = {{"d_model", p->d_model(), 1, kMaxDim},
                               {"n_layer", p->n_layer(), 1, 1024},
                               {"d_state", p->d_state(), 2, 8192}};
  const Status s = check_ranges("s4d", ranges, sizeof ranges / sizeof ranges[0], err);
  if (s != Status::kOk) return s;
  if (static_cast<unsigned>(p->pool()) > 1)
    return fail(err, Status::kUnsupported, "s4d pool %u is not known to this reader", static_cast<unsigned>(p->pool()));
  if (!(p->norm_eps() > 0.f && p->norm_eps() < 1.f))
    return fail(err, Status::kCorrupt, "s4d norm_eps = %g is not in (0, 1)", static_cast<double>(p->norm_eps()));
  return Status::kOk;
}

Status view_bytes(const FileView& f, size_t* bytes, Error* err) {
  const fb::S4DParams* p = f.model->params_as_S4DParams();
  const Status s = check_params(p, err);
  if (s != Status::kOk) return s;
  const fb::Io* io = f.model->io();
  if (!io || io->input() != fb::IoKind::Vector || io->output() != fb::IoKind::Vector)
    return fail(err, Status::kCorrupt, "s4d takes and gives float vectors: the file's io table must say so");
  // One state slot per layer, plus the pool's two (room for 3 per layer covers them, n_layer >= 1).
  return lm_view_bytes(f, p->n_layer(), sizeof(S4d), sizeof(S4dLayer), 3, bytes, err);
}

void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e);

Status bind(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err) {
  const fb::S4DParams* p = f.model->params_as_S4DParams();  // checked by view_bytes
  Status s;
  auto* arch = reinterpret_cast<S4d*>(mem);
  mem += align_up(sizeof(S4d), kAlign);
  m->arch_data = arch;
  S4dHyper& h = arch->p;
  h = S4dHyper{p->d_model(), p->n_layer(), p->d_state(), p->d_state() / 2, p->prenorm(), p->pool() == fb::Pool::Mean,
               p->norm_eps()};
  const uint64_t H = h.d_model, M = h.modes;
  if ((s = bind_lm_tensors(f, m, 0, H, false, err, 0, /*norm_f=*/false)) != Status::kOk) return s;
  arch->layers = reinterpret_cast<S4dLayer*>(mem);
  auto* slots = reinterpret_cast<StateSlot*>(mem + align_up(h.n_layer * sizeof(S4dLayer), kAlign));
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    S4dLayer& L = arch->layers[i];
    L = S4dLayer{};
    const LayerSpec specs[] = {
        {"A", &L.A, {M, 2, H}, false, false},
        {"C", &L.C, {M, 2, H}, false, false},
        {"D", &L.D, {H}, false, false},
        {"out_proj", &L.out_proj, {2 * H, H}, true, false},
        {"out_proj_bias", &L.out_proj_b, {2 * H}, false, false},
        {"norm_weight", &L.norm_w, {H}, false, false},
        {"norm_bias", &L.norm_b, {H}, false, false},
    };
    if ((s = bind_layer(f, i, fb::LayerKind::S4DBlock, specs, sizeof specs / sizeof specs[0], err)) != Status::kOk)
      return s;
  }
  const uint32_t n_state = h.n_layer + (h.pool_mean ? 2 : 0);
  return finish_bind(f, m, expect_state, n_state, slots, h.d_model, h.n_layer, 0, err);
}

// State tensors, in file order: layers.i.ssm [M, 2, H] for each layer, then pool.mean [H], pool.count [1].
void expect_state(const ModelImpl& m, uint32_t i, ExpectedState* e) {
  const S4dHyper& p = static_cast<const S4d*>(m.arch_data)->p;
  if (i < p.n_layer) {
    std::snprintf(e->name, sizeof e->name, "layers.%u.ssm", i);
    e->ndim = 3;
    e->shape[0] = p.modes;
    e->shape[1] = 2;
    e->shape[2] = p.d_model;
    return;
  }
  const bool mean = i == p.n_layer;
  std::snprintf(e->name, sizeof e->name, mean ? "pool.mean" : "pool.count");
  e->ndim = 1;
  e->shape[0] = mean ? p.d_model : 1;
}

void forward(const Exec& x, const ModelImpl& m, const Rows& r) {
  const S4d& arch = *static_cast<const S4d*>(m.arch_data);
  const S4dHyper& p = arch.p;
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, H = p.d_model, M = p.modes;
  Scratch s;  // each buffer [n, ...]
  scratch_layout(p, n, x.scratch, &s);
  model_input(x, m, r, s.h);  // h [n, H] = encoder(input)
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const S4dLayer& L = arch.layers[l];
    const float* z = s.h;
    if (p.prenorm) {
      op.layernorm(x, s.h, L.norm_w.f32(), L.norm_b.f32(), s.z, n, H, p.norm_eps);
      z = s.z;
    }
    op.s4d_step(x, state_ref(m, r, l), L.A.f32(), L.C.f32(), L.D.f32(), z, s.y, n, H, M);  // y = SSM(z) + D z
    op.act(x, Act::kGeluErf, s.y, n * H);
    op.matmul(x, L.out_proj, s.y, H, s.g, 2 * H, n);  // g [n, 2H]
    op.add_bias(x, s.g, L.out_proj_b.f32(), n, 2 * H);
    op.glu(x, s.g, s.y, n, H);  // y = g[:H] sigmoid(g[H:])
    op.add(x, s.h, s.y, n * H);  // residual
    if (!p.prenorm) {
      op.layernorm(x, s.h, L.norm_w.f32(), L.norm_b.f32(), s.z, n, H, p.norm_eps);
      float* t = s.h;  // h = LayerNorm(h): swap the buffers
      s.h = s.z;
      s.z = t;
    }
  }
  if (p.pool_mean) op.running_mean(x, state_ref(m, r, p.n_layer), state_ref(m, r, p.n_layer + 1), s.h, n, H);
  lm_head(x, m, r, s.h, s.z, H, p.norm_eps);  // decoder (no final norm)
}

}  // namespace

const ArchOps kS4dOps = {Arch::kS4d, view_bytes, bind, scratch_bytes, forward};

}  // namespace rill
