// The seam between architectures and backends.
//
//   src/arch/<arch>.cc            an architecture's forward pass: a short list of named ops (Ops below)
//   kernels/<backend>/backend_*.cc one backend: its op table, its memory, its kernels one level below
//
// An architecture never touches memory itself: every computation is an op of the backend's table, and
// every pointer an op receives (weights, state, activations, token ids) is backend memory. So one
// forward pass runs unchanged on any backend, and a backend that records it (a CUDA graph) can replay
// it for every token: the per-step inputs (token ids, which state each row advances) are read from
// backend memory, not baked in as values. Positions, where an architecture needs them, belong to its
// state for the same reason.
//
// Every op takes n rows (tokens). Activations are row-major [n, width]; an `ld` argument gives the
// row stride in floats where a row is a slice of a wider buffer. Recurrent ops (conv, scans, wkv,
// token shift) advance row i's state and take the rows in order, so n rows of one stream are a
// prefill and n rows of n streams are one step of each.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/act.h"
#include "core/required.h"
#include "core/tensor.h"
#include "rill/rill.hpp"

namespace rill {

struct BackendImpl;

// Execution context of one forward pass.
struct Exec {
  const BackendImpl* backend;
  const ParallelFor* pool;  // CPU: threads for the matrix products (null: the calling thread)
  void* stream;             // a GPU backend's stream (null on the CPU)
  unsigned char* scratch;   // the architecture's activations (Architecture::scratch_bytes), backend memory
  unsigned char* work;      // the ops' own workspace (BackendImpl::work_bytes), backend memory
  // SessionOptions::chunked_prefill: an op may take a run of tokens of one stream in a chunked form (the
  // wkv op's). Off: every recurrence runs token by token, and a pass leaves the bits of stepping.
  bool chunked_prefill = false;
};

// One state tensor of every row: row i's is at base[i] + offset (base: [n] in backend memory).
struct StateRef {
  unsigned char* const* base;
  uint64_t offset;
  float* row(size_t i) const { return reinterpret_cast<float*>(base[i] + offset); }
  unsigned char* bytes(size_t i) const { return base[i] + offset; }
};

// The rows of one forward pass: row i is token tokens[i] (or input vector i) advancing the state block
// at states[i]. The outputs of the last n_out rows go to `out`: logits [n_out, vocab] for a token model,
// output vectors [n_out, d_output] for a vector model; none if out is null. Vector models take inputs
// [n, d_input] in place of tokens (and the forward pass may overwrite them).
struct Rows {
  size_t n;
  const int32_t* tokens;         // [n] backend memory
  float* inputs;                 // [n, d_input] backend memory (vector models)
  unsigned char* const* states;  // [n] backend memory
  float* out;                    // [n_out, d_output] backend memory, or null
  size_t n_out;
};


// The op table. One per backend; every entry is required except matmul_by_dtype entries, which a
// backend may leave null for a dtype it cannot multiply (Model::init then refuses such a file).
struct Ops {
  // ---- gathers and products
  // out[i, :] = row tokens[i] of W [V, d], as f32; any dtype.
  Required<void(const Exec& x, const TensorView& W, const int32_t* tokens, float* out, size_t n)> embed;
  // Y[i, r] = sum_c W[r, c] X[i, c] for W [rows, cols]; X rows ldx apart, Y rows ldy apart. Indexed
  // by W.dtype; call it through matmul().
  void (*matmul_by_dtype[kDTypeCount])(const Exec& x, const TensorView& W, const float* X, size_t ldx, float* Y,
                                       size_t ldy, size_t n);

  // ---- norms (rows of width d, contiguous)
  // Y = X / sqrt(mean(X^2) + eps) * w
  Required<void(const Exec& x, const float* X, const float* w, float* Y, size_t n, size_t d, float eps)> rmsnorm;
  // Y = (X - mean) / sqrt(var + eps) * w + b   (biased variance)
  Required<void(const Exec& x, const float* X, const float* w, const float* b, float* Y, size_t n, size_t d,
                float eps)> layernorm;
  // In place on Y [n, H*N]: each head's N channels layer-normalised on their own, then * w + b.
  Required<void(const Exec& x, float* Y, const float* w, const float* b, size_t n, size_t H, size_t N,
                float eps)> group_norm;
  // Mamba-2's gated RMSNorm, in place on Y [n, E]: Y = Y * silu(Z), then each of G groups of E/G
  // channels RMS-normalised on its own, * w. Z rows ldz apart.
  Required<void(const Exec& x, float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E,
                size_t G, float eps)> gated_rmsnorm;

  // ---- recurrences (rows in order; row i advances its own state)
  // Depthwise causal conv step + SiLU over C channels. hist [K-1, C] per row, oldest first; w [K, C]
  // (w[K-1] hits the newest sample); b [C] or null. Y[i] = silu(b + sum_k w[k] window[k]) (without
  // `silu`: the sum itself); then the history shifts in X[i]. X rows ldx apart, Y [n, C].
  Required<void(const Exec& x, StateRef hist, const float* w, const float* b, const float* X, size_t ldx,
                float* Y, size_t n, size_t C, size_t K, bool silu)> conv_step;
  // Mamba-1 selective-scan step with D skip and silu(z) gate. s [N, E] per row; A [N, E]; D [E];
  // dt, X, Y [n, E]; B, C rows ldbc apart ([N] each); Z rows ldz apart ([E]).
  //   s[j,c] = exp(dt[c] A[j,c]) s[j,c] + dt[c] B[j] x[c];  y[c] = (sum_j s[j,c] C[j] + D[c] x[c]) silu(z[c])
  Required<void(const Exec& x, StateRef s, const float* A, const float* dt, const float* X, const float* B,
                const float* C, size_t ldbc, const float* D, const float* Z, size_t ldz, float* Y, size_t n,
                size_t E, size_t N)> ssm_scan;
  // Mamba-2 (SSD) step, scalar decay per head, heads mapped to groups contiguously (g = h / (H/G)).
  // S [H, P, N] per row; X [H*P], B, C [G, N]: slices of rows ldx apart; dt [n, H] (after softplus and
  // clamp); A [H] (< 0); D [H*P]; Y [n, H*P].
  //   S[h,p,j] = exp(dt[h] A[h]) S[h,p,j] + dt[h] x[h,p] B[g,j];  y[h,p] = sum_j S[h,p,j] C[g,j] + D[h,p] x[h,p]
  // work: null, or H * ssd_work_floats(P) floats of scratch; with it and Exec::chunked_prefill, a backend
  // may take a run of tokens of one stream in the chunked form of the Mamba-2 paper: the state and outputs
  // of stepping within f32 rounding, not bit for bit (docs/architectures.md, Mamba-2 in chunks).
  Required<void(const Exec& x, StateRef S, const float* X, const float* B, const float* C, size_t ldx,
                const float* dt, const float* A, const float* D, float* Y, size_t n, size_t H, size_t P, size_t N,
                size_t G, float* work)> ssd_step;
  // The wkv recurrence: a matrix state per head, S [H, V, K] per row (S[h][i][j], i the value index, j
  // the key index), decayed per key channel by w, updated by the outer product v k^T and, where a and b
  // are given, by the delta term (S a) b^T. r, w, k, a, b [n, H*K]; v, Y [n, H*V]:
  //   sa_i = sum_j S_ij a_j (old S);  S_ij = S_ij w_j + sa_i b_j + v_i k_j;  y_i = sum_j S_ij r_j
  // y over the new S, or over the old one with read_first (RWKV-6). RWKV-7 (ggml's rwkv_wkv7), GLA,
  // RetNet and Gated DeltaNet are this op with their own w, a, b (docs/architectures.md).
  // work: null, or H * wkv_work_floats(K, V) floats of scratch; with it and Exec::chunked_prefill, a
  // backend may take a run of tokens of one stream in a chunked form: the state and outputs of stepping
  // within f32 rounding, not bit for bit (docs/architectures.md, the chunked wkv). Otherwise a run
  // leaves the bits of stepping.
  Required<void(const Exec& x, StateRef S, const float* r, const float* w, const float* k, const float* v,
                const float* a, const float* b, float* Y, size_t n, size_t H, size_t K, size_t V, bool read_first,
                float* work)> wkv;
  // Diagonal complex SSM step (S4D after zero-order hold), M modes per channel, H channels. s [M, 2, H]
  // per row (mode m: real parts, then imaginary parts); A, C [M, 2, H] the same way (Ā and C̃); D [H];
  // U, Y [n, H]:  s_m = A_m s_m + u (complex, u real);  y = 2 Re(sum_m C_m s_m) + D u
  Required<void(const Exec& x, StateRef s, const float* A, const float* C, const float* D, const float* U,
                float* Y, size_t n, size_t H, size_t M)> s4d_step;
  // Running mean over a stream's steps, in place on X [n, d]: count = count + 1 (held at 2^24),
  // mean += (x - mean) / count; then X[i] = mean. mean [d] and count [1] per row.
  Required<void(const Exec& x, StateRef mean, StateRef count, float* X, size_t n, size_t d)> running_mean;
  // Token positions: P[i] = row i's position (an i64 [1] state tensor), which then counts row i, in row
  // order; so n rows of one stream get consecutive positions. P [n] (backend memory).
  Required<void(const Exec& x, StateRef pos, int64_t* P, size_t n)> positions;
  // Griffin's RG-LRU step over W channels, h [W] per row; X, GX, GA, Y [n, W]; c [W] = 8 softplus(Λ):
  //   a = exp(-c sigmoid(GA));  u = X sigmoid(GX) (times sqrt(1 - a^2) unless P[i] == 0);
  //   h = (P[i] == 0 ? 0 : a h) + u;  Y = h
  Required<void(const Exec& x, StateRef h, const float* X, const float* GX, const float* GA, const float* c,
                const int64_t* P, float* Y, size_t n, size_t W)> rglru;
  // Rotary embedding in place on Y [n, heads * D] (rows ldy apart), on the first R channels of each head,
  // at position P[i], in the rotate-half convention: for j < R/2, f = P theta^(-2j/R),
  //   (y_j, y_{j+R/2}) = (y_j cos f - y_{j+R/2} sin f, y_{j+R/2} cos f + y_j sin f)
  Required<void(const Exec& x, float* Y, size_t ldy, const int64_t* P, size_t n, size_t heads, size_t D, size_t R,
                float theta)> rope;
  // Local multi-query attention over a ring buffer of the last `window` keys and values. Kr, Vr
  // [window, KV*D] per row, f32 or (f16) half precision; Q [n, H*D], Kn, Vn [n, KV*D]; row i writes its
  // key and value to slot P[i] % window, then each head h (key/value head h / (H/KV)) attends over the
  // min(P[i] + 1, window) filled slots with softmax(scale q.k). Y [n, H*D]. scores: [H, window] floats.
  Required<void(const Exec& x, StateRef Kr, StateRef Vr, bool f16, const float* Q, const float* Kn, const float* Vn,
                const int64_t* P, float* Y, size_t n, size_t H, size_t KV, size_t D, size_t window, float scale,
                float* scores)> attend;
  // RWKV token shift: prev [C] per row. For j < k: Y[i, j*C + c] = u + (prev - u) m with u = U[i, c] and
  // m = mix[j*C + c] (+ D[i, j*C + c] where D is given: RWKV-6's data-dependent mix, rows ldd apart);
  // then, with `advance`, prev = U[i]. Without it no state changes, and row i's prev is still what
  // stepping would see: U of the last row before it of the same stream, if any. U [n, C]; Y rows ldy
  // apart; Y may be U when k == 1 and the op advances (without, later rows still read U).
  Required<void(const Exec& x, StateRef prev, const float* U, const float* mix, const float* D, size_t ldd,
                size_t k, float* Y, size_t ldy, size_t n, size_t C, bool advance)> token_shift;

  // ---- gates and activations
  // dt = clamp(softplus(X + bias), lo, hi), softplus with PyTorch's threshold (x > 20: x); NaN passes
  // through. X rows ldx apart ([len] each); Y [n, len] (may be X when ldx == len).
  Required<void(const Exec& x, const float* X, size_t ldx, const float* bias, float* Y, size_t n, size_t len,
                float lo, float hi)> softplus_dt;
  Required<void(const Exec& x, Act kind, float* Y, size_t count)> act;                            // Y = f(Y)
                Required<void(const Exec& x, float* Y, const float* X, size_t count)> add;                      // Y += X
                Required<void(const Exec& x, float* Y, float s, size_t count)> scale;                           // Y *= s
                Required<void(const Exec& x, float* Y, const float* b, size_t n, size_t d)> add_bias;           // Y[i] += b
                Required<void(const Exec& x, float* Y, const float* X, size_t count)> mul;                      // Y *= X
                Required<void(const Exec& x, float* Y, const float* X, const float* T, size_t count)> lerp;     // Y += (X - Y) T
                // GLU over channels: Y[i, c] = X[i, c] sigmoid(X[i, H + c]).  X [n, 2H], Y [n, H].
                Required<void(const Exec& x, const float* X, float* Y, size_t n, size_t H)> glu;
  // Per-channel standardization in place: X[i, c] = (X[i, c] - mean[c]) / std[c].  X [n, d].
  Required<void(const Exec& x, float* X, const float* mean, const float* std, size_t n, size_t d)> standardize;
  // RWKV-7 keys, per row and head (N channels): kk = L2-normalise(k * k_k) (norm at least 1e-12);
  // k = k (1 + (a - 1) k_a) in place; then wkv7's a = -kk into NA and b = kk a into B. K, A, NA, B [n, H*N].
  Required<void(const Exec& x, float* K, const float* A, const float* k_k, const float* k_a, float* NA, float* B,
                size_t n, size_t H, size_t N)> wkv7_keys;
  // RWKV-7 bonus, per row and head: y += (sum_j r_j k_j r_k[j]) v.  Y, R, K, V [n, H*N]; r_k [H*N].
  Required<void(const Exec& x, float* Y, const float* R, const float* K, const float* r_k, const float* V,
                size_t n, size_t H, size_t N)> wkv7_bonus;

  // Gated DeltaNet's wkv inputs, per row (docs/architectures.md, Gated DeltaNet). X rows ldx apart hold
  // q [H*K], k [H*K], v [Hv*Vd] in that order; dt [n, Hv] (after softplus), A [Hv] (< 0); Bl the β
  // logits, rows ldb apart. q and k are L2-normalised per head, x / sqrt(sum x^2 + 1e-6), and q is
  // scaled by K^-1/2. Per value head hv, of key head hv / (Hv / H):
  //   α = exp(A[hv] dt[hv]);  β = beta_scale sigmoid(Bl[hv]);
  //   R = q;  W = α;  Kn = k;  B = −α β k   (each [n, Hv*K]);   Vout = β v   ([n, Hv*Vd])
  // so that wkv(S, R, W, Kn, Vout, a = Kn, B) is S ← α S (I − β k kᵀ) + β v kᵀ, y = S q.
  Required<void(const Exec& x, const float* X, size_t ldx, const float* dt, const float* A, const float* Bl,
                size_t ldb, float beta_scale, float* R, float* W, float* Kn, float* B, float* Vout, size_t n,
                size_t H, size_t Hv, size_t K, size_t Vd)> delta_keys;

  // GLA's and RetNet's wkv inputs, per row: X rows ldx apart hold q [H*K], k [H*K], v [H*V] in that
  // order. R = scale q, Kn = k, Vout = v (contiguous: [n, H*K], [n, H*K], [n, H*V]); the decay W [n, H*K]
  // is exp(logsigmoid(G) / normalizer) from G (rows ldg apart, [H*K]: GLA's gate), or, with G null,
  // gamma[h] over head h's K channels (RetNet's fixed decays).
  Required<void(const Exec& x, const float* X, size_t ldx, const float* G, size_t ldg, const float* gamma,
                float normalizer, float scale, float* R, float* W, float* Kn, float* Vout, size_t n, size_t H,
                size_t K, size_t Vd)> gate_keys;

  void matmul(const Exec& x, const TensorView& W, const float* X, size_t ldx, float* Y, size_t ldy, size_t n) const {
    matmul_by_dtype[static_cast<size_t>(W.dtype)](x, W, X, ldx, Y, ldy, n);
  }
};

// Floats of the wkv op's chunked-form scratch per head of K keys and V values (kernels::wkv_chunk_floats):
// (4 C + 2) K + C V + 4 C^2 with C = kWkvChunkTokens tokens per chunk.
inline constexpr size_t kWkvChunkTokens = 16;
constexpr size_t wkv_work_floats(size_t K, size_t V) {
  return (4 * kWkvChunkTokens + 2) * K + kWkvChunkTokens * V + 4 * kWkvChunkTokens * kWkvChunkTokens;
}

// Floats of the SSD op's chunked-form scratch per head of P channels (kernels::ssd_chunk_floats):
// C P + 2 C^2 + 2 C with C = kSsdChunkTokens tokens per chunk.
inline constexpr size_t kSsdChunkTokens = 16;
constexpr size_t ssd_work_floats(size_t P) {
  return kSsdChunkTokens * P + 2 * kSsdChunkTokens * kSsdChunkTokens + 2 * kSsdChunkTokens;
}

// A device backend's resources for one pass (a Session's or a Batch's): its own memory for the pass's
// regions, a stream, host-visible pinned I/O, and recorded forward passes (CUDA graphs). Made at
// Session::init / Batch::init, freed by ~Session / ~Batch; nothing in between allocates.
struct DevicePass {
  const BackendImpl* backend = nullptr;
  unsigned char* arena = nullptr;  // the pass's regions (backend memory), kAlign-aligned
  unsigned char* io = nullptr;     // host-visible pinned staging: inputs in, outputs out
  void* stream = nullptr;          // the stream every op of the pass is queued on (Exec::stream)
  void* impl = nullptr;            // the backend's own (graphs)
  // The staging areas inside io (placed by Session::init / Batch::init).
  int32_t* io_tokens = nullptr;
  unsigned char** io_states = nullptr;
  float* io_inputs = nullptr;
  float* io_out = nullptr;
};

// A forward pass for DeviceHooks::record: copy-in, forward, copy-out, all queued on the pass's stream.
using PassFn = void (*)(const void* arg);

// What a backend whose memory is not the host's adds (null for the CPU, which computes in the caller's
// arena and reads the mapped file in place).
struct DeviceHooks {
  // Checks that the device exists and can run this build; kNoBackend with the reason if not.
  Required<Status(int device, Error* err)> probe;
  // Frees what BackendImpl::place_weights allocated.
  Required<void(const unsigned char* weights)> release_weights;
  // A pass's arena of arena_bytes (device) and io_bytes (pinned host) on `device`; close frees both.
  Required<Status(int device, size_t arena_bytes, size_t io_bytes, DevicePass* out, Error* err)> open;
  Required<void(DevicePass* p)> close;
  // Queued on the pass's stream (not waited for): host -> device and device -> host copies.
  Required<void(const DevicePass& p, void* dst, const void* src, size_t bytes)> to_device;
  Required<void(const DevicePass& p, void* dst, const void* src, size_t bytes)> to_host;
  // Waits for everything queued on the pass's stream; kDeviceError (message kept by the backend) if
  // the device failed it.
  Required<Status(const DevicePass& p)> sync;
  // Records fn(arg) as replayable work number `key` (< kMaxRecorded) without running it: a CUDA graph
  // captures the work fn queues; a backend that cannot capture may keep fn and a copy of the arg_bytes
  // (<= kMaxRecordArg) of arg and run it again. Everything fn reads is fixed at init (values) or in
  // backend memory (the per-step inputs), so a replay is the pass. replay queues a recorded key; false
  // if there is none.
  Required<Status(DevicePass* p, uint32_t key, PassFn fn, const void* arg, size_t arg_bytes, Error* err)> record;
  Required<bool(const DevicePass& p, uint32_t key)> replay;
  // Makes the pass's device current on the calling thread (step may come from any thread).
  Required<void(const DevicePass& p)> enter;
  // Counts of device allocations and frees this process has made through the backend (tests).
  Required<void(uint64_t* allocs, uint64_t* frees)> alloc_counts;
  // Measurement (rill bench): the device's read bandwidth over `bytes` (GB/s, 0 if it cannot tell), and
  // the operations (kernels and copies) one replay of recorded work `key` runs (0 if none recorded).
  Required<double(int device, size_t bytes)> read_bandwidth;
  Required<size_t(const DevicePass& p, uint32_t key)> recorded_ops;
};
inline constexpr uint32_t kMaxRecorded = 2;
inline constexpr size_t kMaxRecordArg = 256;

// A compute backend: where weights and state live, and the op table that computes on them.
struct BackendImpl {
  const char* name;  // "cpu-avx512vnni"
  Backend kind;
  const Ops* ops;
  const void* impl;  // the backend's own data (CPU: its kernel table)
  // Where the ops read the file's weight region [data, data + bytes) from. The CPU uses it in place; a
  // device backend makes one allocation on `device` and fills it once (DeviceHooks::release_weights).
  Status (*place_weights)(int device, const unsigned char* data, uint64_t bytes, const unsigned char** out,
                          Error* err);
  // Workspace bytes the ops need for passes of up to max_rows rows over matrices of up to max_cols columns.
  size_t (*work_bytes)(const BackendImpl* self, size_t max_rows, size_t max_cols);
  // Host <-> backend memory (state blobs, input tokens), backend <-> backend (Session::clone), and
  // zeroing backend memory. Synchronous: done when they return; kDeviceError if the device failed one.
  Status (*upload)(void* dst, const void* src, size_t bytes);
  Status (*download)(void* dst, const void* src, size_t bytes);
  Status (*copy)(void* dst, const void* src, size_t bytes);
  Status (*zero)(void* dst, size_t bytes);
  // Null for a backend that computes in host memory (the CPU).
  const DeviceHooks* device = nullptr;
};

// The best compiled-in backend of `kind` this machine can run, or null. Chosen once.
const BackendImpl* find_backend(Backend kind);
// Every compiled-in backend this machine can run, the reference first (for parity tests). Returns the count.
size_t all_backends(const BackendImpl** out, size_t max);

// A session's device pass (null on the CPU), for measurement tools.
struct SessionAccess {
  static const DevicePass* device(const Session& s) { return static_cast<const DevicePass*>(s.pass_.device); }
};

// A device backend's hooks, or null (the CPU).
inline const DeviceHooks* device_hooks(const BackendImpl* b) { return b ? b->device : nullptr; }

// Replaces what find_backend(kind) gives (null: back to the compiled-in one). For tests that run the
// device path of Session and Model on a host emulation (tests/device/device_test.cc); not thread-safe.
void override_backend(Backend kind, const BackendImpl* b);

// Each backend's own list, for the registry (src/backend/registry.cc).
// kernels/cpu/backend_cpu.cc: one CPU backend per kernel table this CPU runs ("cpu-ref" first), the best.
size_t cpu_backends(const BackendImpl** out, size_t max);
const BackendImpl* cpu_backend();
// kernels/cuda/backend_cuda.cu (RILL_CUDA builds): the CUDA backend, or null if the build has none.
const BackendImpl* cuda_backend();
// The backends this build has, as text ("cpu, cuda"), for messages and --version.
const char* compiled_backends();

}  // namespace rill
