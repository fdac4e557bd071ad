// The seam between the generic model/session code and one architecture.
// Each architecture is one file in this folder that fills one ArchOps.
#pragma once

#include "core/model_impl.h"
#include "format/views.h"

namespace rill {

struct ArchOps {
  Arch arch;
  // Bytes of model memory for this architecture's views (per-layer weights, state slots).
  size_t (*view_bytes)(const FileView& f);
  // Checks hyper-parameters and every tensor against them; binds views; fills state and scratch
  // sizes. `mem` holds view_bytes.
  Status (*bind)(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err);
  // One token through the whole model. `state`/`scratch` are the session's; logits may be null
  // (head skipped). Token range was checked by the caller.
  // `pool` (pthreadpool_t or null) goes to every matvec.
  void (*step)(const ModelImpl& m, unsigned char* state, unsigned char* scratch, int32_t token, float* logits,
               void* pool);
  // Optional: n tokens at once (batched weights), leaving exactly the state stepping would; logits of
  // the last token. Null: the session steps token by token.
  void (*prefill)(const ModelImpl& m, unsigned char* state, unsigned char* scratch, const int32_t* tokens, size_t n,
                  float* logits, void* pool);
};

const ArchOps* find_arch(Arch a);

extern const ArchOps kMamba1Ops;
extern const ArchOps kMamba2Ops;
extern const ArchOps kRwkv7Ops;

}  // namespace rill

// ---- shared binding helpers for the architecture files (arch/common.cc) ----
namespace rill {

struct RangeCheck {
  const char* name;
  uint64_t value, lo, hi;
};
// Fails naming the first hyper-parameter outside [lo, hi].
Status check_ranges(const char* arch, const RangeCheck* c, size_t n, Error* err);

// embedding [V, d], norm_f [d] f32, and head [V, d] (or the embedding when tied); also checks the
// model-level tensor count, which includes `n_extra` tensors the architecture binds itself.
Status bind_lm_tensors(const FileView& f, ModelImpl* m, uint64_t V, uint64_t d, bool tied, Error* err,
                       size_t n_extra = 0);

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

// Model memory of a language model: the architecture struct, one layer struct per layer and
// `state_per_layer` state slots per layer, each region kAlign-aligned.
size_t lm_view_bytes(size_t arch_bytes, size_t layer_bytes, size_t n_layer, size_t state_per_layer);

// The file must hold exactly n_layer layers.
Status check_layer_count(const FileView& f, uint32_t n_layer, Error* err);

// The end of every bind: state layout, scratch size and the info fields every architecture has.
Status finish_bind(const FileView& f, ModelImpl* m, ExpectStateFn expect, uint32_t n_state, StateSlot* slots,
                   size_t scratch_bytes, uint32_t d_model, uint32_t n_layer, uint32_t vocab, Error* err);

// Final RMSNorm and head: logits [V] = head * (rmsnorm(h) * norm_f); u [d] is scratch.
void lm_head(const ModelImpl& m, const float* h, float* u, float* logits, size_t d, float eps, void* pool);

}  // namespace rill
