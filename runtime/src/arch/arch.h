// An architecture as the runtime sees it: its spec (arch/<arch>.h: hyper-parameters, tensors, state),
// bound by arch/bind.h, and its forward pass as a list of named ops (arch/<arch>.cc).
#pragma once

#include <algorithm>
#include <type_traits>

#include "arch/spec.h"
#include "backend/backend.h"
#include "core/model_impl.h"
#include "format/views.h"

namespace rill {

struct Architecture {
  Arch arch;
  const char* name;
  // Checks the hyper-parameters (ranges, relations, n_layer against the layers the file holds, each
  // layer's kind), then gives the bytes of model memory for the views (per-layer weights, state slots).
  // No size is derived from an unchecked value, so a hostile header fails here (kCorrupt) and the
  // footprint stays bounded by what the file contains.
  Status (*view_bytes)(const FileView& f, size_t* bytes, Error* err);
  // After view_bytes succeeded on the same file: checks every tensor and state tensor against the
  // spec, binds the views into `mem` (view_bytes long) and fills the state layout.
  Status (*bind)(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err);
  // Bytes of activation scratch (Exec::scratch) for forward passes of up to max_rows rows; with
  // `chunked`, also the buffers of passes that may take a chunked form (Exec::chunked_prefill).
  size_t (*scratch_bytes)(const ModelImpl& m, size_t max_rows, bool chunked);
  // rows.n rows (1 <= n <= the max_rows the scratch holds) through the whole model: input, layers,
  // head. A prefill is n rows of one state; a multi-stream step is one row of each of n states. Token
  // ids were checked by the caller. Every computation is an op of x.backend's table.
  void (*forward)(const Exec& x, const ModelImpl& m, const Rows& rows);
};

// The registry (arch/registry.cc): the architecture of a file's Arch value, or null.
const Architecture* find_arch(Arch a);

extern const Architecture kMamba1;
extern const Architecture kMamba2;
extern const Architecture kRwkv7;
extern const Architecture kRwkv6;
extern const Architecture kGatedDeltaNet;
extern const Architecture kGla;
extern const Architecture kRetNet;
extern const Architecture kS4d;
extern const Architecture kRecurrentGemma;
extern const Architecture kMamba2Hybrid;

// A state tensor of every row of a pass (its offset is the same in each row's state block).
inline StateRef state(const Rows& r, spec::StateAt at) { return StateRef{r.states, at.offset}; }

// ---- activation scratch: a forward pass's buffers, laid out from a table

// One buffer of the scratch: a float (or int64) pointer member of the architecture's Scratch struct,
// `width` elements per row for rows rows (or `width` elements in all when !per_row). A buffer `over`
// another float buffer earlier in the table shares its memory (for activations whose lives do not
// overlap, such as two layer kinds' own); the shared memory is as large as the largest of them.
template <class H, class S>
struct Buffer {
  float* S::*f32;
  spec::Dim<H> width;
  bool per_row = true;
  int64_t* S::*i64 = nullptr;  // instead of f32: an int64 buffer
  float* S::*over = nullptr;   // shares the memory of this earlier float buffer
  bool chunked = false;        // only in passes that may take a chunked form (else null, no memory)
};

// Whether every `over` of the table names a float buffer before it (checked at compile time by
// architecture()).
template <class H, class S, size_t N>
constexpr bool overlays_valid(const Buffer<H, S> (&table)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (!table[i].over) continue;
    bool found = false;
    for (size_t j = 0; j < i; ++j) found = found || (!table[j].i64 && table[j].f32 == table[i].over);
    if (!found || table[i].i64) return false;
  }
  return true;
}

// Places the buffers of `table` for `rows` rows at `base`, each kAlign-aligned (or only measures, when
// base is null); returns the bytes used. Buffers marked `chunked` only when `chunked` (else null).
template <class H, class S, size_t N>
size_t carve(const Buffer<H, S> (&table)[N], const H& h, size_t rows, unsigned char* base,
             std::type_identity_t<S>* out, bool chunked = false) {
  auto bytes = [&](const Buffer<H, S>& b) {
    return static_cast<size_t>(b.width(h)) * (b.per_row ? rows : 1) * (b.i64 ? sizeof(int64_t) : sizeof(float));
  };
  auto root = [&](size_t i) {  // the buffer whose memory table[i] uses (overlays_valid: it is found)
    for (size_t j = i; table[i].over && j-- > 0;)
      if (table[j].f32 == table[i].over) i = j;
    return i;
  };
  size_t off = 0;
  for (size_t i = 0; i < N; ++i) {
    const Buffer<H, S>& b = table[i];
    if (b.chunked && !chunked) {
      if (base && out && b.f32) out->*b.f32 = nullptr;
      continue;
    }
    if (b.over) {
      if (base && out) out->*b.f32 = out->*b.over;
      continue;
    }
    size_t size = bytes(b);
    for (size_t j = i + 1; j < N; ++j)
      if (table[j].over && root(j) == i) size = std::max(size, bytes(table[j]));
    if (base && out) {
      if (b.i64) out->*b.i64 = reinterpret_cast<int64_t*>(base + off);
      else out->*b.f32 = reinterpret_cast<float*>(base + off);
    }
    off += align_up(size, kAlign);
  }
  return off;
}

// The wkv op's chunked-form scratch (backend.h, wkv_work_floats) for heads of K keys and V values, from the
// dimensions heads * K, heads * V and heads: a buffer of the table with per_row false.
template <class Hy>
constexpr spec::Dim<Hy> wkv_work(spec::Dim<Hy> HK, spec::Dim<Hy> HV, spec::Dim<Hy> heads) {
  constexpr int64_t c = kWkvChunkTokens;
  return (4 * c + 2) * HK + c * HV + 4 * c * c * heads;
}

// The SSD op's chunked-form scratch (backend.h, ssd_work_floats) for heads of P channels, from the
// dimensions heads * P and heads: a buffer of the table with per_row false.
template <class Hy>
constexpr spec::Dim<Hy> ssd_work(spec::Dim<Hy> HP, spec::Dim<Hy> heads) {
  constexpr int64_t c = kSsdChunkTokens;
  return c * HP + (2 * c * c + 2 * c) * heads;
}

// ---- what every forward pass shares (arch/common.cc)

// The residual stream h [n, d] of the rows' inputs: embedding rows of the tokens, or the encoder of
// the input vectors (standardized in place first when the file has input_mean / input_std).
void model_input(const Exec& x, const ModelImpl& m, const Rows& r, float* h);

// Y = W X (+ b, when the model has it) over n rows: X rows ldx apart, Y [n, W.rows()].
void linear(const Exec& x, const TensorView& W, const TensorView& b, const float* X, size_t ldx, float* Y, size_t n);
// The output of a flash-linear-attention mixer (Gated DeltaNet, GLA, RetNet): h += out_proj y', where y'
// is y [n, heads * V] with each head's V values RMS-normalised, times norm [V], times silu(g_proj u)
// (FusedRMSNormGated: the gate after the norm). y is overwritten; g [n, heads * V] and o [n, d] are
// scratch; u [n, d] is the mixer's input.
void gated_output(const Exec& x, const TensorView& g_proj, const TensorView& norm, const TensorView& out_proj,
                  const float* u, float* y, float* g, float* o, float* h, size_t n, size_t heads, size_t V, float eps);
// h += down(silu(gate u) * up u), u = RMSNorm(h) * norm: the SwiGLU MLP block. u [n, d], g and up [n, F] scratch.
void swiglu_block(const Exec& x, const TensorView& norm, const TensorView& gate, const TensorView& up,
                  const TensorView& down, float* h, float* u, float* g, float* upb, float* o, size_t n, float eps);
// Out [n, up.rows()] = bias + up act(down X): a LoRA with bottleneck `low` [n, down.rows()] (RWKV's
// decay, gate and mixes). X rows ldx apart; act and bias may be null.
void lora(const Exec& x, const TensorView& down, const TensorView& up, const float* bias, const float* X, size_t ldx,
          const Act* act, float* low, float* out, size_t n);

// The final norm (when the model has norm_f: RMSNorm, or LayerNorm when norm_bias is given) and head
// (+ decoder_bias) over the last rows.n_out rows of h [n, d]: logits, or a vector model's outputs, into
// rows.out. u [n, d] is scratch. Nothing without rows.out.
void lm_head(const Exec& x, const ModelImpl& m, const Rows& r, const float* h, float* u, size_t d, float eps,
             const float* norm_bias = nullptr);

}  // namespace rill
