// Mamba-2 / SSD (architectures.md section 2): binding of the file's tensors and the per-token step.
//
// Notation: d = d_model, E = d_inner = H * P, H heads of head_dim P, G groups sharing B and C,
// N = d_state, K = d_conv, conv_dim = E + 2 G N (the conv covers x, B and C).
// Persistent state per layer: conv history [K-1, conv_dim] (oldest first), SSM state [H, P, N], f32.
#include <cmath>
#include <cstring>

#include "arch/arch.h"
#include "kernels/kernels.h"

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

struct Scratch {
  float* h;       // [d]   residual stream
  float* u;       // [d]   normed input
  float* zxbcdt;  // [2E + 2GN + H]
  float* xbc;     // [conv_dim] conv output (after silu): x, B, C
  float* dt;      // [H]
  float* y;       // [E]
  float* o;       // [d]
};

size_t scratch_layout(const Mamba2Hyper& p, unsigned char* base, Scratch* s) {
  const size_t sizes[] = {p.d_model, p.d_model, p.in_rows(), p.conv_dim(), p.n_heads, p.d_inner, p.d_model};
  float* ptrs[7];
  const size_t bytes = carve_floats(base, sizes, 7, ptrs);
  if (s) *s = Scratch{ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6]};
  return bytes;
}

size_t view_bytes(const FileView& f) {
  const auto* p = f.model->params_as_Mamba2Params();
  return lm_view_bytes(sizeof(Mamba2), sizeof(Mamba2Layer), p ? p->n_layer() : 0, 2);
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
  const fb::Mamba2Params* p = f.model->params_as_Mamba2Params();
  if (!p) return fail(err, Status::kCorrupt, "mamba2 hyper-parameters are missing");
  const RangeCheck ranges[] = {
      {"d_model", p->d_model(), 1, 1u << 16},   {"n_layer", p->n_layer(), 1, 1024},
      {"vocab_size", p->vocab_size(), 1, 1u << 22}, {"d_state", p->d_state(), 1, 1024},
      {"d_conv", p->d_conv(), 2, 64},           {"n_heads", p->n_heads(), 1, 1u << 12},
      {"head_dim", p->head_dim(), 1, 1u << 12}, {"n_groups", p->n_groups(), 1, p->n_heads()},
      {"d_inner", p->d_inner(), 1, 1u << 18}};
  Status s = check_ranges("mamba2", ranges, sizeof ranges / sizeof ranges[0], err);
  if (s != Status::kOk) return s;
  if (p->d_inner() != p->n_heads() * p->head_dim() || p->n_heads() % p->n_groups() != 0)
    return fail(err, Status::kCorrupt, "mamba2 d_inner %u != n_heads %u * head_dim %u, or heads not a multiple of groups %u",
                p->d_inner(), p->n_heads(), p->head_dim(), p->n_groups());
  if (!(p->norm_eps() > 0.f && p->norm_eps() < 1.f) || !(p->dt_min() >= 0.f) || !(p->dt_max() > p->dt_min()))
    return fail(err, Status::kCorrupt, "mamba2 norm_eps %g or dt limits [%g, %g] are not sane",
                static_cast<double>(p->norm_eps()), static_cast<double>(p->dt_min()), static_cast<double>(p->dt_max()));
  auto* arch = reinterpret_cast<Mamba2*>(mem);
  mem += align_up(sizeof(Mamba2), kAlign);
  m->arch_data = arch;
  Mamba2Hyper& h = arch->p;
  h = Mamba2Hyper{p->d_model(), p->n_layer(), p->vocab_size(), p->d_inner(),  p->d_state(), p->d_conv(),
                  p->n_heads(), p->head_dim(), p->n_groups(), p->norm_eps(), p->dt_min(),  p->dt_max()};
  const uint64_t d = h.d_model, E = h.d_inner, K = h.d_conv, H = h.n_heads, C = h.conv_dim(), V = h.vocab;
  if ((s = bind_lm_tensors(f, m, V, d, p->tied_head(), err)) != Status::kOk) return s;
  if ((s = check_layer_count(f, h.n_layer, err)) != Status::kOk) return s;
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
  return finish_bind(f, m, expect_state, 2 * h.n_layer, slots, scratch_layout(h, nullptr, nullptr), h.d_model,
                     h.n_layer, h.vocab, err);
}

void step(const ModelImpl& m, unsigned char* state, unsigned char* scratch, int32_t token, float* logits,
          void* pool) {
  const Mamba2& arch = *static_cast<const Mamba2*>(m.arch_data);
  const Mamba2Hyper& p = arch.p;
  const size_t E = p.d_inner, N = p.d_state, H = p.n_heads, G = p.n_groups, K = p.d_conv, C = p.conv_dim();
  Scratch s;
  scratch_layout(p, scratch, &s);
  kernels::embedding_row(m.embed, static_cast<uint64_t>(token), s.h);  // h [d]
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const Mamba2Layer& L = arch.layers[l];
    float* conv_hist = reinterpret_cast<float*>(state + m.state_slots[2 * l].offset);  // [K-1, conv_dim]
    float* ssm = reinterpret_cast<float*>(state + m.state_slots[2 * l + 1].offset);     // [H, P, N]
    kernels::rmsnorm(s.h, L.norm.f32(), s.u, p.d_model, p.norm_eps);                     // u [d]
    kernels::matvec(L.in_proj, s.u, s.zxbcdt, pool);  // [z (E), xBC (conv_dim), dt (H)]
    const float* z = s.zxbcdt;
    const float* dtr = s.zxbcdt + E + C;
    kernels::conv1d_step_silu(conv_hist, L.conv_w.f32(), L.conv_b ? L.conv_b.f32() : nullptr, s.zxbcdt + E, s.xbc, C,
                              K);
    for (size_t h = 0; h < H; ++h) {  // bias before softplus, then the time_step_limit clamp
      const float dt = kernels::softplus(dtr[h] + L.dt_b.f32()[h]);
      s.dt[h] = std::fmin(std::fmax(dt, p.dt_min), p.dt_max);
    }
    const float* x = s.xbc;           // [H, P]
    const float* B = s.xbc + E;       // [G, N]
    const float* Cm = B + G * N;      // [G, N]
    kernels::mamba2_scan_step(ssm, x, B, Cm, s.dt, L.A.f32(), L.D.f32(), s.y, H, p.head_dim, N, G);
    kernels::gated_rmsnorm(s.y, z, L.gate_norm.f32(), E, G, p.norm_eps);  // y [E]
    kernels::matvec(L.out_proj, s.y, s.o, pool);                                   // o [d]
    for (size_t i = 0; i < p.d_model; ++i) s.h[i] += s.o[i];
  }
  if (logits) lm_head(m, s.h, s.u, logits, p.d_model, p.norm_eps, pool);
}

}  // namespace

const ArchOps kMamba2Ops = {Arch::kMamba2, view_bytes, bind, step, nullptr};

}  // namespace rill
