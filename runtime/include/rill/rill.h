/* rill: the stable C API (C99; usable from C and C++).
 *
 * The same runtime as rill.hpp behind opaque handles, for C programs and for code that keeps a C
 * boundary. Guarantees:
 *   - ABI: functions are only added, never changed or removed, within a major version. Option
 *     structs begin with `struct_size`; fill them with the *_default_options() functions below, so
 *     a program built against this header keeps working with a later library that has more fields.
 *     Status values never change.
 *   - Memory: the size-then-init pairs (rill_model_footprint/rill_model_init,
 *     rill_session_footprint/rill_session_init, ...) place every object in memory the caller gives
 *     (RILL_ALIGN-aligned); the handle points into that memory. Nothing is freed: release the
 *     memory when done. The calls that allocate on the heap or do I/O are exactly:
 *       rill_model_open / rill_model_close        map the file, allocate model memory and a handle
 *       rill_pool_create(_with) / rill_pool_destroy  create and join threads
 *       rill_tokenize, for a BPE or SentencePiece tokenizer  working memory for the text
 *     and on a device backend (RILL_BACKEND_CUDA) also rill_model_init, rill_session_init,
 *     rill_session_clone and rill_batch_init (device and pinned host memory, freed by the matching
 *     release). rill_model_verify_data reads every weight byte (from disk, for pages not yet in memory).
 *   - After init, step, prefill, batch steps, reset, state copies, detokenize and sampling never
 *     allocate, never do I/O (a mapped file's weight pages are read in by the first steps unless the
 *     model was opened with prefault: rill_model_options) and never block on anything but the calling
 *     session's own pool work. On a device backend, step, prefill, the batch steps, reset and the state
 *     copies also wait for the device to finish that call's own work (they are synchronous).
 *   - On error they return a status and leave the state unchanged; except RILL_DEVICE_ERROR, after
 *     which the outputs are not written and the state is undefined (reset it, or copy a saved blob in).
 *   - A model may be shared by many sessions and threads; a session, batch or sampler is used by
 *     one thread at a time.
 *
 * Minimal use:
 *   rill_model* m;  rill_error e;
 *   rill_model_options mo = rill_model_default_options();
 *   if (rill_model_open("demo.rill", &mo, &m, &e) != RILL_OK) { puts(e.message); return 1; }
 *   rill_session_options so = rill_session_default_options();
 *   size_t bytes;  rill_session_footprint(m, &so, &bytes);
 *   void* arena = my_aligned_alloc(RILL_ALIGN, bytes);
 *   rill_session* s;  rill_session_init(m, &so, arena, bytes, &s, &e);
 *   rill_session_step(s, token, logits, vocab);
 */
#ifndef RILL_H_
#define RILL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define RILL_API
#else
#define RILL_API __attribute__((visibility("default")))
#endif

/* ---- version: of this header (macros) and of the library (rill_version) ------------------------- */
#define RILL_VERSION_MAJOR 0
#define RILL_VERSION_MINOR 1
#define RILL_VERSION_PATCH 0
#define RILL_VERSION_NUMBER (RILL_VERSION_MAJOR * 10000 + RILL_VERSION_MINOR * 100 + RILL_VERSION_PATCH)
/* The same number, so that `#if RILL_VERSION >= 100` means what it says (the status for a newer file
 * format is RILL_FORMAT_VERSION). */
#define RILL_VERSION RILL_VERSION_NUMBER

/* The library's version as RILL_VERSION_NUMBER computes it; a program may check at run time that
 * rill_version() / 10000 == RILL_VERSION_MAJOR. */
RILL_API int32_t rill_version(void);
/* "0.1.0+<commit>" (static text). */
RILL_API const char* rill_version_string(void);

/* ---- status ------------------------------------------------------------------------------------ */
typedef int32_t rill_status;
enum {
  RILL_OK = 0,
  RILL_INVALID_ARGUMENT = 1, /* a null pointer, a wrong buffer size, an option out of range */
  RILL_BAD_STATE = 2,        /* the object was not initialised */
  RILL_MISUSE = 3,           /* a handle after its release or close, or one never initialised */
  RILL_BAD_MAGIC = 20,       /* not a rill model file */
  RILL_FORMAT_VERSION = 21,  /* the file's format major version is newer than this library (was RILL_VERSION) */
  RILL_CORRUPT = 22,         /* the file failed verification */
  RILL_UNSUPPORTED = 23,     /* an architecture, dtype, option or feature this build does not support */
  RILL_TRUNCATED = 24,       /* the file is shorter than it declares */
  RILL_IO = 25,              /* a file could not be opened, mapped or read */
  RILL_ARENA_TOO_SMALL = 40, /* the caller's memory is smaller than the footprint */
  RILL_ALIGNMENT = 41,       /* a caller buffer is not RILL_ALIGN-aligned */
  RILL_OUT_OF_MEMORY = 42,   /* the system or the device could not provide memory or threads */
  RILL_NO_BACKEND = 60,      /* the requested backend is not compiled in or not present */
  RILL_DEVICE_ERROR = 61,    /* the device failed a pass (driver error, lost device) */
  RILL_TOKEN_RANGE = 80,     /* a token id outside [0, vocab) */
  RILL_NON_FINITE = 81,      /* NaN or Inf in caller input */
  RILL_STATE_MISMATCH = 82,  /* a state blob from another model, of the wrong size, or damaged */
  RILL_CONTEXT_FULL = 83     /* the stream holds max_context tokens and its session refuses more; nothing changed */
};

/* A short description of a status ("arena too small"); static text, never null. */
RILL_API const char* rill_status_str(rill_status s);

/* Detail for a failed init or open: the status and a message naming the object and the cause. */
typedef struct rill_error {
  rill_status status;
  char message[256];
} rill_error;

/* Alignment of model data, model memory and arenas. */
#define RILL_ALIGN 64

/* The largest struct_size an options or info struct may declare. Up to it, the fields this library knows
 * are read and any bytes past them must be zero (else RILL_UNSUPPORTED: a newer program asked for
 * something this library cannot do); above it the struct is refused (RILL_INVALID_ARGUMENT) and nothing
 * past the fields this library knows is read. */
#define RILL_STRUCT_SIZE_MAX 4096

/* ---- handles ------------------------------------------------------------------------------------ */
/* Every handle carries a magic value. A handle that was released or closed, or memory that never
 * held one, gets RILL_MISUSE from every call, and a second release or close is RILL_MISUSE, not a
 * double free (handles in caller memory are checked in place; the small handles of rill_model_open
 * and rill_pool_create are kept by the library after close, and reused by later opens).
 * A null handle is RILL_INVALID_ARGUMENT for every call that acts on it, and a no-op (RILL_OK) for
 * release, close and destroy, as free(NULL) is. Calls that cannot return a status say what they do:
 *   rill_session_state_size(NULL or dead)           0
 *   rill_sampler_sample(NULL or dead, or logits NULL) -1
 *   rill_*_options_init(NULL, or size < 4 or > RILL_STRUCT_SIZE_MAX)  writes nothing
 * Buffers: a null output buffer with a count of 0 means "do not write" where a call says so (logits,
 * outputs, stream_status); any other null buffer is RILL_INVALID_ARGUMENT.
 * Memory that was freed (an arena, or model memory, released by the caller) is not a handle any more:
 * no call can detect its use. */
typedef struct rill_model rill_model;     /* a verified model (in caller memory, or opened) */
typedef struct rill_session rill_session; /* one stream: state + scratch in a caller arena */
typedef struct rill_batch rill_batch;     /* scratch for stepping many sessions in one pass */
typedef struct rill_sampler rill_sampler; /* token sampling (temperature, top-k, top-p) */
typedef struct rill_pool rill_pool;       /* worker threads for the matrix products */

/* ---- model --------------------------------------------------------------------------------------- */
enum { RILL_BACKEND_CPU = 0, RILL_BACKEND_CUDA = 1 };
enum {
  RILL_ARCH_UNKNOWN = 0, RILL_ARCH_MAMBA1 = 1, RILL_ARCH_MAMBA2 = 2, RILL_ARCH_RWKV7 = 3, RILL_ARCH_S4D = 4,
  RILL_ARCH_RECURRENT_GEMMA = 5, RILL_ARCH_MAMBA2_HYBRID = 6, RILL_ARCH_RWKV6 = 7,
  RILL_ARCH_GATED_DELTANET = 8, RILL_ARCH_GLA = 9, RILL_ARCH_RETNET = 10
};
enum {
  RILL_TOKENIZER_NONE = 0, RILL_TOKENIZER_BYTES = 1, RILL_TOKENIZER_WORLD = 2, RILL_TOKENIZER_BPE = 3,
  RILL_TOKENIZER_SENTENCEPIECE = 4, RILL_TOKENIZER_BPE_BYTE_FALLBACK = 5
};

typedef struct rill_model_options {
  uint32_t struct_size; /* sizeof(rill_model_options), set by rill_model_default_options() */
  int32_t backend;      /* RILL_BACKEND_CPU (default) */
  int32_t device;       /* device index for GPU backends (default 0) */
  int32_t verify;       /* 1 (default): run the file verifier; 0 only for images you trust */
  /* Since 0.1 for control loops (default 0): prefault reads every page of the file at init, so no step
   * faults one in; lock_memory also mlocks the file and the model memory (RILL_OUT_OF_MEMORY, the limit
   * in the message, where RLIMIT_MEMLOCK refuses and this process may not raise it). */
  int32_t prefault;
  int32_t lock_memory;
  /* Since 0.1 for Mamba-2 hybrids (default 0: the file's): the tokens a stream holds, which sizes the
   * state; part of the state fingerprint. Ignored by models without attention over all past tokens. */
  uint32_t max_context;
} rill_model_options;

typedef struct rill_model_info {
  uint32_t struct_size;
  int32_t arch; /* RILL_ARCH_* */
  uint32_t d_model, n_layer, vocab_size;
  int32_t tokenizer; /* RILL_TOKENIZER_* */
  int32_t bos_id, eos_id; /* -1 if none */
  uint64_t weight_bytes, state_bytes, file_bytes;
  const char* arch_name; /* "mamba1" (static text) */
  const char* backend;   /* the backend computing it, e.g. "cpu-avx512vnni" (static text) */
  /* Since 0.1 with vector models: d_input 0 means token ids in and vocab_size logits out; otherwise
   * float[d_input] in (rill_session_step_vector) and float[d_output] out, and vocab_size is 0. */
  uint32_t d_input, d_output;
  uint32_t max_context; /* since 0.1: tokens a stream holds (Mamba-2 hybrids); 0: no limit */
} rill_model_info;

/* Fills defaults for the fields that fit in struct_size bytes (use the inline wrappers below). */
RILL_API void rill_model_options_init(rill_model_options* opts, size_t struct_size);

/* Bytes of model memory rill_model_init needs for the file `data[0, size)` (checks the header). */
RILL_API rill_status rill_model_footprint(const void* data, size_t size, size_t* bytes, rill_error* err);
/* Verifies the file and places the model in `mem`; `data` (RILL_ALIGN-aligned, e.g. a mapped
 * file) and `mem` must outlive the model and its sessions. opts may be null (defaults). */
RILL_API rill_status rill_model_init(const void* data, size_t size, const rill_model_options* opts, void* mem,
                                     size_t mem_size, rill_model** out, rill_error* err);
/* Maps the file at `path` and initialises the model in memory of its own; release with
 * rill_model_close. Allocates and does I/O. */
RILL_API rill_status rill_model_open(const char* path, const rill_model_options* opts, rill_model** out,
                                     rill_error* err);
/* Frees what a device backend holds for a model from rill_model_init (its weights in device memory;
 * nothing on the CPU), after every session and batch of it is released; the handle is then dead. Then
 * free `mem` as usual. RILL_MISUSE for a model from rill_model_open (close it) or a dead handle. */
RILL_API rill_status rill_model_release(rill_model* model);
/* Releases a model from rill_model_open; the handle is then dead. Every session of it must be released.
 * RILL_OK for null; RILL_MISUSE for a second close, or for a model from rill_model_init (release it). */
RILL_API rill_status rill_model_close(rill_model* model);
/* info->struct_size must be set (sizeof(rill_model_info), at most RILL_STRUCT_SIZE_MAX). Writes the
 * fields that fit in it (a larger struct's bytes past this library's fields are zeroed) and sets
 * info->struct_size to the bytes this library filled: a program built against a newer header learns
 * which of its fields are valid. */
RILL_API rill_status rill_model_get_info(const rill_model* model, rill_model_info* info);
/* Recomputes the SHA-256 of the weights (reads every weight byte). */
RILL_API rill_status rill_model_verify_data(const rill_model* model, rill_error* err);

/* ---- worker threads ------------------------------------------------------------------------------ */
/* A pool of `threads` (1 = the caller only). Allocates. Share one pool between sessions stepped in
 * turn; in a hard-deadline loop, give each stepping thread its own pool, or none. The workers inherit
 * the scheduling policy, priority and CPU affinity of the thread that calls this: to set them, use
 * rill_pool_create_with. */
RILL_API rill_status rill_pool_create(size_t threads, rill_pool** out);
/* Destroys a pool (its threads are joined); RILL_OK for null, RILL_MISUSE for a second destroy. */
RILL_API rill_status rill_pool_destroy(rill_pool* pool);

/* How the pool's worker threads run. The workers are created by a helper thread set up as asked, so
 * they inherit exactly this (and not the calling thread's real-time policy by accident). */
typedef struct rill_pool_options {
  uint32_t struct_size;
  uint32_t threads;       /* workers including the caller's share, >= 1 (default 1) */
  uint64_t cpu_mask;      /* CPUs 0..63 the workers may run on; 0 (default): the calling thread's set */
  int32_t sched_policy;   /* -1 (default): the calling thread's; else SCHED_OTHER, SCHED_FIFO or SCHED_RR */
  int32_t sched_priority; /* for SCHED_FIFO / SCHED_RR (1..99); 0 otherwise */
} rill_pool_options;

RILL_API void rill_pool_options_init(rill_pool_options* opts, size_t struct_size);
/* RILL_INVALID_ARGUMENT for a policy or priority out of range or a mask with no CPU of this machine;
 * RILL_UNSUPPORTED if the system refused them (a real-time policy without the privilege: the message
 * of err says which); RILL_OUT_OF_MEMORY if the threads could not be created. */
RILL_API rill_status rill_pool_create_with(const rill_pool_options* opts, rill_pool** out, rill_error* err);

/* ---- session: one stream -------------------------------------------------------------------------- */
typedef struct rill_session_options {
  uint32_t struct_size;
  uint32_t prefill_chunk; /* tokens one pass takes during prefill, 1..4096 (default 64) */
  rill_pool* pool;        /* null (default): the calling thread does all the work */
  /* Since 0.1 (default 0): prefault writes every page of the arena at init; lock_memory also mlocks it
   * until rill_session_release. */
  uint32_t prefault;
  uint32_t lock_memory;
  /* Since 0.1, a model with max_context: RILL_CONTEXT_REFUSE (default) returns RILL_CONTEXT_FULL at a
   * full stream and changes nothing; RILL_CONTEXT_SLIDE keeps the last max_context tokens. */
  int32_t context_full;
  /* Since 0.1 (default 0: a prefill leaves exactly the bits of stepping): nonzero lets a prefill take a
   * chunked form where the CPU has a faster one (GLA, RetNet, Gated DeltaNet heads on AVX-512; Mamba-2's
   * SSD, in hybrids too, on AVX2 and AVX-512), which
   * leaves stepping's state and logits within rounding, not its bits (SessionOptions::chunked_prefill). */
  uint32_t chunked_prefill;
} rill_session_options;
enum { RILL_CONTEXT_REFUSE = 0, RILL_CONTEXT_SLIDE = 1 };

RILL_API void rill_session_options_init(rill_session_options* opts, size_t struct_size);

/* Bytes of arena a session needs (handle, state, scratch). opts may be null (defaults). */
RILL_API rill_status rill_session_footprint(const rill_model* model, const rill_session_options* opts,
                                            size_t* bytes);
/* Places a session in `arena` (RILL_ALIGN-aligned, >= footprint); the state starts at zero. On a device
 * backend (RILL_BACKEND_CUDA) the state and scratch are in device memory init allocates: release the
 * session with rill_session_release before freeing the arena. */
RILL_API rill_status rill_session_init(const rill_model* model, const rill_session_options* opts, void* arena,
                                       size_t arena_size, rill_session** out, rill_error* err);
/* An explicit copy in another arena (same size as the original's footprint), then independent. */
/* Frees a session's device memory (nothing on the CPU); the handle is then dead (RILL_MISUSE from any
 * later call, a second release included). RILL_OK for null. */
RILL_API rill_status rill_session_release(rill_session* session);
RILL_API rill_status rill_session_clone(const rill_session* session, void* arena, size_t arena_size,
                                        rill_session** out, rill_error* err);
/* One token: advances the state and writes n_logits == vocab logits (or none, if logits is null). */
RILL_API rill_status rill_session_step(rill_session* session, int32_t token, float* logits, size_t n_logits);
/* n tokens: the same state as n steps; the last token's logits if logits is not null. */
RILL_API rill_status rill_session_prefill(rill_session* session, const int32_t* tokens, size_t n_tokens,
                                          float* logits, size_t n_logits);
/* Vector (sensor) models: one step of n_input == d_input floats; writes n_output == d_output floats
 * (or none, if output is null). NaN or Inf in the input: RILL_NON_FINITE; a wrong size:
 * RILL_INVALID_ARGUMENT; either way the state is unchanged. */
RILL_API rill_status rill_session_step_vector(rill_session* session, const float* input, size_t n_input,
                                              float* output, size_t n_output);
/* n_steps vectors [n_steps, d_input] (n_input == n_steps * d_input): the same state as n_steps steps.
 * Writes the last step's output (n_output == d_output), every step's ([n_steps, d_output]), or none. */
RILL_API rill_status rill_session_prefill_vectors(rill_session* session, const float* inputs, size_t n_steps,
                                                  size_t n_input, float* output, size_t n_output);
/* Back to the empty state: RILL_OK, or RILL_DEVICE_ERROR if a device backend failed the write. */
RILL_API rill_status rill_session_reset(rill_session* session);
/* The state as a self-describing blob (64-byte header + state): save, restore, branch. copy_in
 * refuses (RILL_STATE_MISMATCH) a blob of another model or a damaged one, state unchanged. */
RILL_API size_t rill_session_state_size(const rill_session* session);
RILL_API rill_status rill_session_state_copy_out(const rill_session* session, void* dst, size_t size);
RILL_API rill_status rill_session_state_copy_in(rill_session* session, const void* src, size_t size);

/* ---- batch: many sessions of one model, one pass over the weights ---------------------------------- */
typedef struct rill_batch_options {
  uint32_t struct_size;
  uint32_t max_streams; /* the most sessions one step takes, 1..4096 (default 16) */
  rill_pool* pool;      /* null (default): the calling thread does all the work */
} rill_batch_options;

RILL_API void rill_batch_options_init(rill_batch_options* opts, size_t struct_size);
RILL_API rill_status rill_batch_footprint(const rill_model* model, const rill_batch_options* opts, size_t* bytes);
RILL_API rill_status rill_batch_init(const rill_model* model, const rill_batch_options* opts, void* arena,
                                     size_t arena_size, rill_batch** out, rill_error* err);
/* Frees a batch's device memory (nothing on the CPU); the handle is then dead (RILL_MISUSE after).
 * RILL_OK for null. */
RILL_API rill_status rill_batch_release(rill_batch* batch);
/* sessions[i] takes tokens[i] (i < n <= max_streams); row i of logits [n, vocab] (n_logits ==
 * n * vocab) gets its logits, bit-identical to stepping it alone. Each session once, all of this
 * batch's model; everything is checked before any state changes. */
RILL_API rill_status rill_batch_step(rill_batch* batch, rill_session* const* sessions, const int32_t* tokens,
                                     size_t n, float* logits, size_t n_logits);
/* What a batch step does with a stream whose input it refuses (a token out of range, a non-finite
 * vector, a null session, one of another model or one met twice). */
enum {
  RILL_BAD_STREAM_REFUSE_ALL = 0, /* the step is refused, no session changes, the first refusal returned */
  RILL_BAD_STREAM_SKIP = 1        /* that stream keeps its state and gets a NaN row; the others advance */
};
/* rill_batch_step that says which stream was refused: stream_status (null, or n entries) gets each
 * stream's status (RILL_OK, or why its input was refused); with RILL_BAD_STREAM_SKIP it is required and
 * the step returns RILL_OK when only streams were refused. A bad call (null sessions, n out of range, a
 * wrong buffer size) returns RILL_INVALID_ARGUMENT and leaves stream_status unwritten. */
RILL_API rill_status rill_batch_step_streams(rill_batch* batch, rill_session* const* sessions, const int32_t* tokens,
                                             size_t n, float* logits, size_t n_logits, rill_status* stream_status,
                                             int32_t on_bad);
/* Vector models: sessions[i] takes row i of inputs [n, d_input] (n_input == n * d_input); row i of
 * outputs [n, d_output] (n_output == n * d_output) gets its output, bit-identical to stepping it alone
 * (rill_session_step_vector); outputs may be null. stream_status and on_bad as above (a row with NaN or
 * Inf: RILL_NON_FINITE). */
RILL_API rill_status rill_batch_step_vectors(rill_batch* batch, rill_session* const* sessions, const float* inputs,
                                             size_t n, size_t n_input, float* outputs, size_t n_output,
                                             rill_status* stream_status, int32_t on_bad);

/* ---- text ------------------------------------------------------------------------------------------ */
/* Text -> token ids with the model's embedded tokenizer (RILL_UNSUPPORTED if it has none, or for BPE
 * or SentencePiece in a build without their libraries). Writes at most `cap` ids and sets *n_out to the count needed;
 * RILL_INVALID_ARGUMENT if cap was too small (call again with *n_out), if a byte has no token
 * (world), or if the text is not valid UTF-8 (BPE); RILL_OUT_OF_MEMORY if BPE's working memory could
 * not be had. */
RILL_API rill_status rill_tokenize(const rill_model* model, const char* text, size_t len, int32_t* out, size_t cap,
                                   size_t* n_out);
/* The bytes of one token (not NUL-terminated; *n_out may be 0). */
RILL_API rill_status rill_detokenize(const rill_model* model, int32_t token, char* out, size_t cap, size_t* n_out);

/* ---- sampling ------------------------------------------------------------------------------------------ */
typedef struct rill_sampler_options {
  uint32_t struct_size;
  float temperature; /* 0 = greedy (default 0.8) */
  int32_t top_k;     /* 0 = off (default 40) */
  float top_p;       /* 1 = off (default 0.95) */
  uint64_t seed;     /* default 0 */
} rill_sampler_options;

RILL_API void rill_sampler_options_init(rill_sampler_options* opts, size_t struct_size);
/* Bytes of memory a sampler over `vocab` logits needs. */
RILL_API size_t rill_sampler_footprint(size_t vocab);
RILL_API rill_status rill_sampler_init(const rill_sampler_options* opts, size_t vocab, void* mem, size_t mem_size,
                                       rill_sampler** out);
/* A token id from logits[0, n); ids >= n_valid (padding rows) are never picked; -1 on misuse. */
RILL_API int32_t rill_sampler_sample(rill_sampler* sampler, const float* logits, size_t n, size_t n_valid);
RILL_API rill_status rill_sampler_reseed(rill_sampler* sampler, uint64_t seed);
/* The sampler's handle is dead after this (RILL_MISUSE, or -1 from sample). RILL_OK for null. */
RILL_API rill_status rill_sampler_release(rill_sampler* sampler);

/* ---- defaults (inline: the struct size is this header's) ------------------------------------------------- */
static inline rill_model_options rill_model_default_options(void) {
  rill_model_options o;
  rill_model_options_init(&o, sizeof o);
  return o;
}
static inline rill_session_options rill_session_default_options(void) {
  rill_session_options o;
  rill_session_options_init(&o, sizeof o);
  return o;
}
static inline rill_batch_options rill_batch_default_options(void) {
  rill_batch_options o;
  rill_batch_options_init(&o, sizeof o);
  return o;
}
static inline rill_sampler_options rill_sampler_default_options(void) {
  rill_sampler_options o;
  rill_sampler_options_init(&o, sizeof o);
  return o;
}
static inline rill_pool_options rill_pool_default_options(void) {
  rill_pool_options o;
  rill_pool_options_init(&o, sizeof o);
  return o;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RILL_H_ */
