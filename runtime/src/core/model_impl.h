// Internal model representation: zero-copy views into the file, built once by Model::init.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdarg>

#include "core/tensor.h"
#include "core/tokenizer_view.h"
#include "rill/rill.hpp"

namespace rill {

// Element types of state tensors (the values of the file's DType for them).
enum class StateType : uint8_t { kF32 = 0, kF16 = 1, kI64 = 5 };
inline uint64_t state_type_bytes(StateType t) { return t == StateType::kF16 ? 2 : t == StateType::kI64 ? 8 : 4; }

// Where one state tensor lives inside the session's state block.
struct StateSlot {
  const char* name;  // points into the file
  uint64_t offset, count;  // count elements of `type`
  StateType type;
  uint64_t bytes() const { return count * state_type_bytes(type); }
};

struct BackendImpl;

struct ModelImpl {
  Arch arch = Arch::kUnknown;
  ModelInfo info{};
  const unsigned char* file = nullptr;
  const void* fb_model = nullptr;  // const fb::Model*
  const BackendImpl* backend = nullptr;  // computes it; owns where its weights and sessions' state live
  int32_t device = 0;                    // the device index (GPU backends)
  const unsigned char* weights = nullptr;  // the weight region in the backend's memory
  uint64_t max_cols = 0;                 // widest matrix (columns), for sizing the ops' workspace
  // Views every language-model architecture has (in the backend's weight memory).
  TensorView embed;   // [V, d]
  TensorView norm_f;  // [d] f32
  TensorView head;    // [V, d] (the embedding when tied)
  // Vector models (Io table): embed is the encoder [d, d_input], head the decoder [d_output, d].
  uint32_t d_input = 0;   // floats per step in; 0: token ids
  uint32_t d_output = 0;  // floats per step out (vocab_size for token models)
  TensorView embed_b;     // encoder_bias [d] f32
  TensorView head_b;      // decoder_bias [d_output] f32
  TensorView in_mean, in_std;  // [d_input] f32, or empty
  // The architecture's own hyper-parameters and per-layer views, a struct defined in
  // arch/<arch>.cc and placed in the caller's model memory by its bind().
  const void* arch_data = nullptr;
  StateSlot* state_slots = nullptr;
  uint32_t n_state_slots = 0;
  uint64_t state_bytes = 0;
  uint64_t fingerprint = 0;  // identifies compatible state blobs
  uint32_t max_context_option = 0;  // ModelOptions::max_context, read by bind (0: the file's)
  TokenizerView tok;  // the embedded tokenizer, verified at init
  // Ranges init locked in memory (ModelOptions::lock_memory), unlocked by Model::release.
  const void* locked[2] = {nullptr, nullptr};
  size_t locked_bytes[2] = {0, 0};
};

// Formats into err (if not null) and returns code. Used at init time only, never in step.
Status fail(Error* err, Status code, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Touches every page of [p, p + n) (reads it, or writes zeros), so later accesses take no page fault.
void prefault_read(const void* p, size_t n);
// mlock of [p, p + n). Where the lock limit refuses it and the process may raise the limit (root, or
// CAP_SYS_RESOURCE), raises RLIMIT_MEMLOCK and tries again; else kOutOfMemory with the limit and the
// size in the message. `what` names the memory in it.
Status lock_pages(const void* p, size_t n, const char* what, Error* err);

}  // namespace rill
