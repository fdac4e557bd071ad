// An architecture: binding of the file's tensors, and its forward pass as a list of named ops.
// Each architecture is one file in this folder that fills one ArchOps.
#pragma once

#include "backend/backend.h"
#include "core/model_impl.h"
#include "format/views.h"

namespace rill {

struct ArchOps {
  Arch arch;
  // Checks the hyper-parameters (ranges, relations, n_layer against the layers the file holds), then
  // gives the bytes of model memory for this architecture's views (per-layer weights, state slots).
  // No size is derived from an unchecked value, so a hostile header fails here (kCorrupt) and the
  // footprint stays bounded by what the file contains.
  Status (*view_bytes)(const FileView& f, size_t* bytes, Error* err);
  // After view_bytes succeeded on the same file: checks every tensor against the hyper-parameters;
  // binds views; fills the state layout. `mem` holds view_bytes.
  Status (*bind)(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err);
  // Bytes of activation scratch (Exec::scratch) for forward passes of up to max_rows rows.
  size_t (*scratch_bytes)(const ModelImpl& m, size_t max_rows);
  // rows.n rows (1 <= n <= the max_rows the scratch holds) through the whole model: embedding, layers,
  // head. A prefill is n rows of one state; a multi-stream step is one row of each of n states.
  // Token ids were checked by the caller. Every computation is an op of x.backend's table.
  void (*forward)(const Exec& x, const ModelImpl& m, const Rows& rows);
};

const ArchOps* find_arch(Arch a);

extern const ArchOps kMamba1Ops;
extern const ArchOps kMamba2Ops;
extern const ArchOps kRwkv7Ops;
extern const ArchOps kS4dOps;
extern const ArchOps kRecurrentGemmaOps;

}  // namespace rill

// ---- shared binding helpers for the architecture files (arch/common.cc) ----
namespace rill {

struct RangeCheck {
  const char* name;
  uint64_t value, lo, hi;
};
// Fails naming the first hyper-parameter outside [lo, hi].
Status check_ranges(const char* arch, const RangeCheck* c, size_t n, Error* err);

// The model-level tensors of the file's inputs and outputs (its Io table), and norm_f [d] f32 unless
// !norm_f. Tokens: embedding [V, d] and head [V, d] (or the embedding when tied). Vectors (V must be 0):
// encoder [d, d_input] + encoder_bias, decoder [d_output, d] + decoder_bias, optionally input_mean and
// input_std [d_input]. Also checks the model-level tensor count, which includes `n_extra` tensors the
// architecture binds itself, and sets m->d_input / d_output.
Status bind_lm_tensors(const FileView& f, ModelImpl* m, uint64_t V, uint64_t d, bool tied, Error* err,
                       size_t n_extra = 0, bool norm_f = true);

struct LayerSpec {
  const char* name;
  TensorView* out;
  std::initializer_list<uint64_t> shape;
  bool matrix;    // f32, f16, int8 or int4 (else f32 only)
  bool optional;  // absent unless its flag is set; present when the flag is off is an error
};
// Checks layer i has `kind` and exactly the tensors of `specs`, each with its shape and dtype.
Status bind_layer(const FileView& f, uint32_t i, fb::LayerKind kind, const LayerSpec* specs, size_t n, Error* err);


// Places consecutive kAlign-aligned float buffers of `sizes[i]` floats at `base` (or only measures
// when base is null); returns the bytes used.
size_t carve_floats(unsigned char* base, const size_t* sizes, size_t n, float** out);

// Model memory of a language model whose hyper-parameters were checked: the architecture struct, one
// layer struct per layer and `state_per_layer` state slots per layer, each region kAlign-aligned. The
// file must hold exactly n_layer layers (kCorrupt otherwise).
Status lm_view_bytes(const FileView& f, uint32_t n_layer, size_t arch_bytes, size_t layer_bytes,
                     size_t state_per_layer, size_t* bytes, Error* err);

// The end of every bind: state layout and the info fields every architecture has.
Status finish_bind(const FileView& f, ModelImpl* m, ExpectStateFn expect, uint32_t n_state, StateSlot* slots,
                   uint32_t d_model, uint32_t n_layer, uint32_t vocab, Error* err);

// State slot `i` (file order) of every row.
inline StateRef state_ref(const ModelImpl& m, const Rows& r, uint32_t i) {
  return StateRef{r.states, m.state_slots[i].offset};
}

// The residual stream h [n, d] of the rows' inputs: embedding rows of the tokens, or the encoder of
// the input vectors (standardized in place first when the file has input_mean / input_std).
void model_input(const Exec& x, const ModelImpl& m, const Rows& r, float* h);

// Final norm (when the model has norm_f) and head (+ decoder_bias) over the last rows.n_logits rows of h [n, d]: logits = head (norm(h) norm_f),
// RMSNorm, or LayerNorm when norm_bias is given. u [n, d] is scratch. Nothing without rows.logits.
void lm_head(const Exec& x, const ModelImpl& m, const Rows& r, const float* h, float* u, size_t d, float eps,
             const float* norm_bias = nullptr);

}  // namespace rill
