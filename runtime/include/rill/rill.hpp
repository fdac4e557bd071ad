// rill: a runtime for recurrent sequence models (Mamba, Mamba-2, RWKV, SSMs) with a fixed-size state.
//
// Data flow: model file bytes (mapped or caller buffer, used in place)
//            -> Model::init   verifies everything once, binds zero-copy weight views (caller memory)
//            -> Session::init places state + scratch in a caller arena
//            -> Session::step token -> logits, with no allocation, exception or I/O. Without a
//               thread pool it takes no lock and waits on nothing; with one it waits only for the
//               pool's threads to finish its own slices, never for another session (ParallelFor).
//
// Nothing in this header allocates. The only allocating helpers are in rill/extension.hpp.
// A Model is immutable after init and may be shared by many sessions and threads. A Session is used
// by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rill {

// Status codes. Values never change once released. Ranges: 1-19 misuse, 20-39 model file,
// 40-59 memory, 60-79 backend, 80-99 caller input.
enum class Status : int32_t {
  kOk = 0,
  kInvalidArgument = 1,   // a null pointer, a wrong buffer size, an option out of range
  kBadState = 2,          // the object was not initialised
  kMisuse = 3,            // a handle used after its release or close, or never initialised (C API)
  kBadMagic = 20,         // not a rill model file
  kVersion = 21,          // the file's format major version is newer than this reader
  kCorrupt = 22,          // the file failed verification (bounds, shapes, hyper-parameters)
  kUnsupported = 23,      // an architecture, dtype or feature this build does not support
  kTruncated = 24,        // the file is shorter than it declares
  kIo = 25,               // a file could not be opened, mapped or read (extension helpers only)
  kArenaTooSmall = 40,    // the caller's memory is smaller than the footprint
  kAlignment = 41,        // a caller buffer is not aligned as required
  kOutOfMemory = 42,      // the system or the device could not provide memory or threads (extension
                          // helpers; a device backend's Model::init and Session::init)
  kNoBackend = 60,        // the requested backend is not compiled in, or its device is absent
  kDeviceError = 61,      // the device failed a pass (driver error, lost device): outputs not written,
                          // the state undefined (reset it, or restore a saved blob)
  kTokenRange = 80,       // a token id outside [0, vocab)
  kNonFinite = 81,        // NaN or Inf in caller input
  kStateMismatch = 82,    // a state blob from another model, of the wrong size, or damaged
  kContextFull = 83,      // the stream holds max_context tokens and its session refuses more
                          // (SessionOptions::context_full): nothing changed
};

const char* status_str(Status s);

// Detail for a failed call: the code and a message naming the object and the cause.
struct Error {
  Status status = Status::kOk;
  char message[256] = {0};
};

// Alignment required of model data and arenas.
inline constexpr size_t kAlign = 64;

// Compute backends. The model format and the session API are the same for all.
enum class Backend : int32_t { kCpu = 0, kCuda = 1 };

enum class Arch : int32_t {
  kUnknown = 0, kMamba1 = 1, kMamba2 = 2, kRwkv7 = 3, kS4d = 4, kRecurrentGemma = 5, kMamba2Hybrid = 6, kRwkv6 = 7, kGatedDeltaNet = 8, kGla = 9, kRetNet = 10
};
const char* arch_name(Arch a);

// kBytes: token id = byte value. kWorld: RWKV world vocabulary, greedy longest match. kBpe: byte-level
// BPE from a Hugging Face tokenizer.json (NFC, split pattern, merges by rank, added tokens).
// kSentencePiece: a SentencePiece model (tokenizer.model; Gemma, RecurrentGemma), run by libsentencepiece.
// kBpeByteFallback: BPE over characters with byte fallback, from a Hugging Face tokenizer.json that is a
// SentencePiece model rewritten (Llama's, Mistral's): a space prefix, merges by rank, <0xNN> byte tokens.
enum class TokenizerKind : int32_t { kNone = 0, kBytes = 1, kWorld = 2, kBpe = 3, kSentencePiece = 4, kBpeByteFallback = 5 };

struct ModelOptions {
  Backend backend = Backend::kCpu;
  int32_t device = 0;  // device index for GPU backends
  bool verify = true;  // run the FlatBuffers verifier (leave on unless the image is trusted)
  // For a loop that must never fault: prefault reads every page of the file's bytes at init (a mapped
  // file is otherwise read in by the first steps), lock_memory also locks them and the model memory in
  // RAM (mlock; kOutOfMemory with the limit in the message where RLIMIT_MEMLOCK refuses and cannot be
  // raised). Model::release unlocks. CPU backend: the weights are these bytes.
  bool prefault = false;
  bool lock_memory = false;
  // Models with attention over all past tokens (Mamba-2 hybrids): the tokens a stream's state holds,
  // which sizes the state (keys and values of every attention layer). 0: the file's default (the
  // converter's --max-context). Part of the state fingerprint: blobs move only between models loaded
  // with the same value. Ignored by models without such attention.
  uint32_t max_context = 0;
};

struct ModelInfo {
  Arch arch = Arch::kUnknown;
  uint32_t d_model = 0, n_layer = 0, vocab_size = 0;  // vocab_size 0: a vector model
  // What a step takes and gives: d_input 0 means a token id in and d_output = vocab_size logits out;
  // otherwise float[d_input] in (Session::step_vector) and float[d_output] out.
  uint32_t d_input = 0, d_output = 0;
  uint64_t weight_bytes = 0;  // bytes of tensor data in the file
  uint64_t state_bytes = 0;   // persistent state of one session
  uint64_t file_bytes = 0;
  TokenizerKind tokenizer = TokenizerKind::kNone;
  int32_t bos_id = -1, eos_id = -1;
  const char* backend = "";   // the backend computing it, e.g. "cpu-avx512vnni" (static text)
  uint32_t max_context = 0;   // tokens a stream holds (attention over all past tokens); 0: no limit
};

struct ModelImpl;

// A verified model. `data` (the file bytes) and `mem` must outlive the Model; nothing is copied.
class Model {
 public:
  // Bytes of caller memory `init` needs for this file (per-layer weight views). Verifies the
  // header; tensor and shape checks happen in init.
  static Status footprint(const void* data, size_t size, size_t* bytes, Error* err = nullptr);

  // Verifies the file and binds weight views. `data` must be aligned to kAlign (a mapped file is).
  // `mem` (kAlign-aligned, >= footprint) receives the views.
  static Status init(const void* data, size_t size, const ModelOptions& opts, void* mem,
                     size_t mem_size, Model* out, Error* err = nullptr);

  // Frees what the backend holds for this model outside `mem` (a device backend's copy of the weights;
  // nothing on the CPU) and leaves this handle empty. Call it once, after every session and batch of the
  // model is gone; other handles on the same model are then dangling, as when `mem` is freed.
  // LoadedModel does it for its own model.
  void release();

  // Recomputes the SHA-256 of the weight region and compares it with the one the converter wrote.
  // Reads every weight byte (slow for large models; on request only). kCorrupt on mismatch,
  // kUnsupported if the file carries no checksum.
  Status verify_data(Error* err = nullptr) const;

  bool ok() const { return impl_ != nullptr; }
  ModelInfo info() const;
  const ModelImpl* impl() const { return impl_; }

  // A Model is a handle on its implementation, which lives in the caller's `mem`: copying or moving
  // the Model object (or a LoadedModel) leaves sessions valid; freeing `mem` or the file does not.
  static Model from_impl(const ModelImpl* impl) {
    Model m;
    m.impl_ = impl;
    return m;
  }

 private:
  const ModelImpl* impl_ = nullptr;
};

// How the caller lends rill threads. `run(self, task, ctx, n)` must call task(ctx, i) exactly once for
// every i in [0, n), on any threads, and return after all calls have returned. rill calls it inside
// step, so it must not allocate, and to keep step's promise it must not make the caller wait for
// anything but these tasks (a pool busy with another caller's work should run them on the calling
// thread, as rill's does). Matrix products cut their rows into 4 * `n_threads` contiguous slices, and
// row ops their rows or heads likewise, so a pool that lets an idle thread take a slice another has not
// started (pthreadpool does) evens out threads that run at different speeds; results are
// bit-identical to one thread, whatever ran where. rill/extension.hpp's ThreadPool (pthreadpool)
// is one; wrap any other pool the same way.
struct ParallelFor {
  using Task = void (*)(void* ctx, size_t i);
  void (*run)(const ParallelFor* self, Task task, void* ctx, size_t n) = nullptr;
  size_t n_threads = 1;
};

// What a session does with a token past its model's max_context (SessionOptions::context_full).
enum class ContextFull : int32_t { kRefuse = 0, kSlide = 1 };

struct SessionOptions {
  // Work splitting for the matrix products; null: the calling thread does all the work. Must outlive
  // the session; may be shared by sessions stepped in turn.
  const ParallelFor* pool = nullptr;
  // Tokens one forward pass takes during prefill: each weight is read once per chunk of this many
  // tokens. The session's scratch grows with it (Session::footprint counts it). 1 to 4096. On a Zen 4
  // VM (`rill bench --chunk 32,64,128,256`, the 130m-class shapes, q8) 64 prefilled 13-15 % faster
  // than 32 and 128 another 5-8 %, for twice and four times the scratch (32 tokens: 1.3-2.5 MiB); a
  // memory-tight caller may take 8 for about 10-25 % slower prefill than 32.
  uint32_t prefill_chunk = 64;
  // prefault writes every page of the arena at init; lock_memory also locks it in RAM (mlock; as in
  // ModelOptions) until the session is destroyed (or moved over), which unlocks it.
  bool prefault = false;
  bool lock_memory = false;
  // A model with a context limit (ModelInfo::max_context), when a stream is full: kRefuse returns
  // kContextFull and changes nothing; kSlide keeps the last max_context tokens' keys and values (the
  // oldest slot is overwritten), which the model was not trained for.
  ContextFull context_full = ContextFull::kRefuse;
  // By default a prefill runs every recurrence token by token and leaves exactly the bits of stepping.
  // chunked_prefill lets it take a run of tokens in a chunked form where the CPU has a faster one (the
  // wkv family's heads of 128 keys or more on AVX-512: GLA, RetNet, Gated DeltaNet, 2-5 % faster
  // prefill; Mamba-2's SSD, in hybrids too, on AVX2 and AVX-512, about 15 % faster prefill;
  // docs/performance.md): stepping's values within f32 rounding, not its bits. f32 weights
  // stay within 1e-5 of the largest logit and state value; with int8/int4 weights a rounding
  // difference can flip an activation's int8 rounding in a later product, and the logits then move
  // by about as much as the quantization itself moves them (forward_test). The session's scratch then
  // also holds the chunked form's workspace (Session::footprint counts it; about 100 KiB per head of
  // 256 keys and 512 values).
  bool chunked_prefill = false;
};

// The slots of one forward pass in a caller arena (a Session's or a Batch's): the model, the pool,
// how many rows a pass takes, and where their inputs and activations live (backend memory).
// Internal; placed by Session::init and Batch::init.
struct PassSlots {
  const ModelImpl* impl = nullptr;  // in the caller's model memory: does not move
  const ParallelFor* pool = nullptr;
  uint32_t max_rows = 0;
  int32_t* tokens = nullptr;         // [max_rows] input token ids
  float* inputs = nullptr;           // [max_rows, d_input] input vectors (vector models)
  unsigned char** states = nullptr;  // [max_rows] the state each row advances
  unsigned char* scratch = nullptr;  // the architecture's activations for max_rows rows
  unsigned char* work = nullptr;     // the backend ops' workspace for max_rows rows
  void* device = nullptr;            // a device backend's resources for this pass (in the caller arena)
  float* out = nullptr;              // a device backend's outputs [max_rows, d_output]
  bool chunked_prefill = false;        // SessionOptions::chunked_prefill
};

// A stream's state and scratch, placed in a caller arena. A Session refers to the model's
// implementation (in the model memory), not to the Model object, so the Model or LoadedModel may be
// moved. It owns its arena's contents: it can be moved but not copied (two handles on one arena would
// step one state twice); Session::clone makes an explicit copy in another arena, state_copy_* copies
// the state as bytes.
class Session {
 public:
  Session() = default;
  ~Session();  // frees a device backend's memory for the session (nothing on the CPU)
  Session(Session&& o) noexcept { *this = static_cast<Session&&>(o); }
  Session& operator=(Session&& o) noexcept;  // o is left empty: the arena has one handle
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Bytes of arena a session of `model` with `opts` needs: state, input slots, and the scratch of a
  // forward pass over opts.prefill_chunk tokens, each region kAlign-aligned. kInvalidArgument if the
  // options are out of range.
  // On a device backend (ModelOptions::backend = kCuda) the arena holds only a small handle: the state
  // and scratch live in device memory that init allocates (device_footprint bytes of it) and the
  // destructor frees.
  static Status footprint(const Model& model, const SessionOptions& opts, size_t* bytes);
  static Status device_footprint(const Model& model, const SessionOptions& opts, size_t* bytes);

  // Places the session in `arena` (kAlign-aligned). The state starts zeroed (reset). On a device
  // backend it also allocates the device memory and records the decode step (a CUDA graph replayed per
  // token); kOutOfMemory if the device has too little memory.
  static Status init(const Model& model, const SessionOptions& opts, void* arena, size_t arena_size,
                     Session* out, Error* err = nullptr);

  // An explicit copy: a session with this one's model and options (prefault and lock_memory too) in
  // `arena` (>= arena_bytes()), holding a copy of this state. The two then step independently.
  Status clone(void* arena, size_t arena_size, Session* out, Error* err = nullptr) const;
  size_t arena_bytes() const;

  // One token: advances the state and writes `vocab` logits (n_logits must equal vocab_size), or
  // skips the head when logits is null. No allocation. On error the state is unchanged. A vector model
  // gives kInvalidArgument (use step_vector).
  Status step(int32_t token, float* logits, size_t n_logits);

  // A run of tokens: leaves the same state as stepping them one by one; writes the last token's
  // logits if `logits` is not null. All token ids are checked before the state is touched.
  Status prefill(const int32_t* tokens, size_t n_tokens, float* logits, size_t n_logits);

  // Vector models (ModelInfo::d_input > 0): one step of `n_input` == d_input floats; writes
  // `n_output` == d_output floats, or nothing when output is null. NaN or Inf in the input gives
  // kNonFinite, a wrong size kInvalidArgument; either way the state is unchanged. No allocation.
  Status step_vector(const float* input, size_t n_input, float* output, size_t n_output);

  // n_steps vectors, row-major [n_steps, d_input] (n_input == n_steps * d_input): leaves the same state
  // as stepping them one by one. Writes the last step's output (n_output == d_output) or every step's
  // ([n_steps, d_output], n_output == n_steps * d_output), or nothing when output is null. All input is
  // checked before the state is touched.
  Status prefill_vectors(const float* inputs, size_t n_steps, size_t n_input, float* output, size_t n_output);

  // Back to the empty state (zeros). kDeviceError if a device backend failed the write (the state is
  // then undefined: reset again, or restore a saved blob).
  Status reset();

  // The persistent state as a self-describing blob, for saving, restoring, branching: a 64-byte
  // header (magic "RLST", version, the model's fingerprint, payload size, checksum) followed by the
  // state_bytes of state. copy_in refuses (kStateMismatch) a blob of another size, from a model
  // with another architecture, shape or source checkpoint, or with a damaged payload; the state is
  // then unchanged. On a device backend either copy may return kDeviceError (after a failed copy in,
  // the state is undefined: reset it, or copy a blob in again).
  static constexpr size_t kStateHeaderBytes = 64;
  size_t state_size() const;
  Status state_copy_out(void* dst, size_t size) const;
  Status state_copy_in(const void* src, size_t size);
  // Direct access to one named f32 state tensor ("layers.0.ssm"); null if no such tensor, if it is
  // not f32 (a RecurrentGemma key/value ring at f16, the i64 "position"), or if the state is in device
  // memory (use state_copy_out).
  const float* state_tensor(const char* name, size_t* n_floats) const;
  // Any state tensor's bytes, whatever its element type (rill inspect lists them); null if none.
  const void* state_tensor_bytes(const char* name, size_t* bytes) const;

  Model model() const { return Model::from_impl(pass_.impl); }
  bool ok() const { return pass_.impl != nullptr; }

 private:
  friend class Batch;
  friend struct SessionAccess;      // internal: measurement tools reach the device pass
  PassSlots pass_;                  // every row advances state_ (the plan: prefill_chunk rows)
  unsigned char* state_ = nullptr;  // [state_bytes], backend memory
  // The last batch step that took this session (a number unique to that step, process-wide): a session
  // met twice in one step is found in O(n).
  uint64_t batch_step_ = 0;
  bool prefault_ = false;     // the arena's options, which clone() gives its copy
  void* locked_ = nullptr;    // the arena range this session locked (lock_memory): unlocked with the session
  size_t locked_bytes_ = 0;
  // Tokens the state has taken since its reset (the state's own position, mirrored on the host so a
  // device backend's step needs no read back), and what a full stream does (SessionOptions).
  uint64_t held_ = 0;
  ContextFull context_full_ = ContextFull::kRefuse;
  // Whether n more tokens would overfill a model with a max_context that this session refuses past.
  bool refuses(size_t n) const;
};

// What a batch step does with a stream whose input it refuses (a token out of range, a non-finite or
// wrong-size vector, a session of another model or one met twice).
enum class BadStream : int32_t {
  kRefuseAll = 0,  // the whole step is refused: no session changes, the first refusal is returned
  kSkip = 1,       // that stream is skipped (its state unchanged, its output row NaN); the others advance
};

struct BatchOptions {
  // Work splitting for the matrix products (see SessionOptions::pool).
  const ParallelFor* pool = nullptr;
  // The most sessions one Batch::step advances. The batch's scratch grows with it. 1 to 4096.
  uint32_t max_streams = 16;
};

// Many streams, one pass over the weights: Batch::step advances n sessions of one model by one token
// each, reading every weight row once for all n. Each session's state and logits are bit-identical to
// stepping it alone. The batch holds only the scratch of a forward pass over max_streams rows, in a
// caller arena; the sessions keep their own states and may also be stepped alone between batches.
// Like a Session, a Batch is used by one thread at a time, and moved, not copied.
class Batch {
 public:
  Batch() = default;
  ~Batch();
  Batch(Batch&& o) noexcept { *this = static_cast<Batch&&>(o); }
  Batch& operator=(Batch&& o) noexcept;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  static Status footprint(const Model& model, const BatchOptions& opts, size_t* bytes);
  static Status init(const Model& model, const BatchOptions& opts, void* arena, size_t arena_size, Batch* out,
                     Error* err = nullptr);

  // sessions[i] takes tokens[i], for i < n (1 <= n <= max_streams), and its logits go to row i of
  // `logits` [n, vocab] (n_logits == n * vocab), or nowhere when logits is null. Every session must be
  // of this batch's model and appear once. All input is checked before any state is touched.
  //   stream_status: null, or n entries: each stream's verdict, kOk or why its input was refused
  //     (kTokenRange; kInvalidArgument for a null session, one of another model, or one met twice);
  //     written whenever the call's own arguments are good, unwritten when they are not.
  //   on_bad: kRefuseAll (default): a refused stream refuses the step, no session changes, and the first
  //     refusal is returned. kSkip: the refused streams keep their state and get NaN rows, the others
  //     advance, and the step returns kOk; stream_status is then required (a skip is never silent).
  // A token model only (a vector model: kInvalidArgument; use step_vectors).
  Status step(Session* const* sessions, const int32_t* tokens, size_t n, float* logits, size_t n_logits,
              Status* stream_status = nullptr, BadStream on_bad = BadStream::kRefuseAll);

  // Vector models: sessions[i] takes row i of `inputs` [n, d_input] (n_input == n * d_input), and its
  // output goes to row i of `outputs` [n, d_output] (n_output == n * d_output), or nowhere when outputs
  // is null; bit-identical to Session::step_vector on each alone. A row with NaN or Inf is refused
  // (kNonFinite); stream_status and on_bad as for step.
  Status step_vectors(Session* const* sessions, const float* inputs, size_t n, size_t n_input, float* outputs,
                      size_t n_output, Status* stream_status = nullptr, BadStream on_bad = BadStream::kRefuseAll);

  bool ok() const { return pass_.impl != nullptr; }
  uint32_t max_streams() const { return pass_.max_rows; }

 private:
  Status run(Session* const* sessions, const int32_t* tokens, const float* inputs, size_t n, float* out,
             Status* stream_status, BadStream on_bad);
  PassSlots pass_;  // row i advances the i-th session of a step
};

// Text <-> tokens with the model's embedded tokenizer (kUnsupported if it has none).
// tokenize writes at most `cap` ids and sets *n_out to the count needed; kInvalidArgument if cap
// was too small (nothing is lost: call again with *n_out), if some byte has no token (world; then
// *n_out is the count up to it) or if the text is not valid UTF-8 (BPE). detokenize writes the
// bytes of one token (*n_out may be 0).
// tokenize is part of the extension: for BPE it allocates (normalizing and splitting the text, with
// PCRE2 and utf8proc; kOutOfMemory if it cannot) and returns kUnsupported in a build without them.
// detokenize is part of the core and never allocates.
Status tokenize(const Model& model, const char* text, size_t len, int32_t* out, size_t cap, size_t* n_out);
Status detokenize(const Model& model, int32_t token, char* out, size_t cap, size_t* n_out);

// Sampling without allocation. `scratch` holds vocab_size candidates (see scratch_count).
struct SamplerParams {
  float temperature = 0.8f;  // 0 = greedy
  int32_t top_k = 40;        // 0 = off
  float top_p = 0.95f;       // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  struct Candidate {
    float logit;
    int32_t id;
  };
  static size_t scratch_count(size_t vocab) { return vocab; }
  // `scratch` must hold scratch_count(vocab) candidates and outlive the sampler.
  Status init(const SamplerParams& p, Candidate* scratch, size_t scratch_count);
  // Picks a token from `logits[0, n)`; ids >= n_valid (padding rows) are never picked. Returns -1
  // if n_valid is 0, or if sampling (temperature > 0) needs more scratch than init was given.
  int32_t sample(const float* logits, size_t n, size_t n_valid);
  void reseed(uint64_t seed);

 private:
  float next_uniform();
  SamplerParams p_{};
  Candidate* cand_ = nullptr;
  size_t cap_ = 0;
  uint64_t rng_[2] = {0, 0};
};

const char* version_string();

}  // namespace rill
