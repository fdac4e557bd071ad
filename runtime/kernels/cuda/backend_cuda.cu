// The CUDA backend: its op table, its memory and its kernels (one file: every kernel is small).
//
// Memory (DeviceHooks): the weights are one cudaMalloc filled once from the file; each Session or Batch
// gets one device arena (state, inputs, activations, outputs), a stream and pinned staging for token
// ids in and logits out. A Session's decode step is captured once as a CUDA graph (copy-in, every op,
// copy-out) and replayed per token: the ops read the token ids, state pointers and positions from
// device memory, so one graph serves every token. Nothing here allocates after Session::init.
//
// Kernels: every op queues on the pass's stream and returns; errors surface at the pass's sync.
//   products   one warp per output row (row layouts) or per 16 rows (the 16-row int8/int4 layouts),
//              coalesced, dequantizing in registers, f32 accumulation; a decode step reads the
//              weights once, a prefill chunk or batch once per 32 tokens (so a 64-token chunk twice;
//              the int4 row layout reads each byte twice per pass, its nibbles in two halves);
//   recurrences one thread per channel (conv, Mamba-1 scan, RG-LRU, S4D, token shift) or one warp
//              per state row (Mamba-2 SSD: head and channel; wkv: head and value row), 4 warps a
//              block, taking the rows in order, so a prefill chunk of one stream and a batch of
//              streams both advance correctly;
//   norms      one block per row (or head, or group).
//
// The same source builds for nvcc and, for the tests, as C++ against a CPU emulation of CUDA
// (tests/cuda_emu, which provides cuda_runtime.h and cuda_fp16.h): every launch goes through
// RILL_LAUNCH and every static shared array through RILL_SHARED, which the emulation implements.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#if defined(CUDA_EMU)
#define RILL_LAUNCH(kernel, grid, block, smem, stream) ::cuda_emu::launch(#kernel, &kernel, grid, block, smem, stream)
#define RILL_SHARED(type, name, dims) \
  static thread_local type name dims; \
  ::cuda_emu::shared_bytes(&name, sizeof(name))
#else
#define RILL_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define RILL_SHARED(type, name, dims) __shared__ type name dims
#endif
// Dynamic shared memory: RILL_DYNAMIC_SHARED(float, name) is the launch's dynamic shared bytes as an array.
#if defined(CUDA_EMU)
#define RILL_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::cuda_emu::dynamic_shared())
#else
#define RILL_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
constexpr size_t kMaxDynamicShared = 48 * 1024;  // without opting in to more (cudaFuncSetAttribute)
// The emulation counts the weight bytes the product kernels read (tests pin reads per prefill chunk).
#if defined(CUDA_EMU)
#define RILL_COUNT_WEIGHT_BYTES(n) ::cuda_emu::count_weight_bytes(n)
#else
#define RILL_COUNT_WEIGHT_BYTES(n) static_cast<void>(n)
#endif
// The emulated build is a backend of its own ("cuda-emu"), beside the real one in a RILL_CUDA test build.
#if !defined(RILL_CUDA_BACKEND_NAME)
#define RILL_CUDA_BACKEND_NAME "cuda"
#define RILL_CUDA_BACKEND_FN cuda_backend
#endif

#include <atomic>
#include <cstdio>
#include <mutex>
#include <cstring>
#include <new>

#include "backend/backend.h"
#include "core/model_impl.h"

namespace rill {
namespace {

// ---- bookkeeping

std::atomic<uint64_t> g_allocs{0}, g_frees{0};

cudaStream_t stream_of(const Exec& x) { return static_cast<cudaStream_t>(x.stream); }
constexpr unsigned kThreads = 256;
unsigned grid_for(size_t n, unsigned per = kThreads) { return static_cast<unsigned>((n + per - 1) / per); }

// ---- device helpers

__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float siluf_(float x) { return x / (1.f + expf(-x)); }
__device__ __forceinline__ float softplusf_(float x) { return x > 20.f ? x : log1pf(expf(x)); }

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
  static constexpr float kIdentity = 0.f;
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  static constexpr float kIdentity = -INFINITY;
};
template <class Op>
__device__ __forceinline__ float warp_reduce(float v) {
  for (int o = 16; o > 0; o >>= 1) v = Op()(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) { return warp_reduce<Sum>(v); }
// Op over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <class Op>
__device__ float block_reduce(float v) {
  RILL_SHARED(float, part, [32]);
  RILL_SHARED(float, total, );
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_reduce<Op>(v);
  __syncthreads();  // part[] and total may still be read by the previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const float s = warp_reduce<Op>(lane < static_cast<int>(blockDim.x / 32) ? part[lane] : Op::kIdentity);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}
__device__ float block_sum(float v) { return block_reduce<Sum>(v); }
__device__ float block_max(float v) { return block_reduce<Max>(v); }

// This thread's index over the whole grid (1-D launches).
__device__ __forceinline__ uint64_t thread_index() {
  return blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
}

__device__ __forceinline__ float* state_row(unsigned char* const* base, size_t i, uint64_t off) {
  return reinterpret_cast<float*>(base[i] + off);
}

// A weight tensor as the kernels see it (TensorView without the host-only parts).
struct DevW {
  const unsigned char* data;
  const void* scales;
  uint32_t group;
  uint32_t dtype;
  bool rows16;
  uint64_t rows, cols;
};
DevW dev_w(const TensorView& W) {
  return DevW{static_cast<const unsigned char*>(W.data), W.scales, W.group, static_cast<uint32_t>(W.dtype), W.rows16,
              W.rows(), W.cols()};
}
constexpr uint32_t kF32 = 0, kF16 = 1, kBF16 = 2, kI8 = 3;  // DType; anything else is int4
static_assert(static_cast<uint32_t>(DType::kF32) == kF32 && static_cast<uint32_t>(DType::kF16) == kF16 &&
                  static_cast<uint32_t>(DType::kBF16) == kBF16 && static_cast<uint32_t>(DType::kI8) == kI8,
              "the kernels number the dtypes as DType does");
static_assert(static_cast<int>(Act::kTanh) == 0 && static_cast<int>(Act::kSigmoid) == 1 &&
                  static_cast<int>(Act::kReluSq) == 2 && static_cast<int>(Act::kRwkv7Decay) == 3 &&
                  static_cast<int>(Act::kGeluErf) == 4 && static_cast<int>(Act::kGeluTanh) == 5 &&
                  static_cast<int>(Act::kSilu) == 6 && static_cast<int>(Act::kSoftplus) == 7 &&
                  static_cast<int>(Act::kExpNegExp) == 8,
              "act_k numbers the functions as Act does");

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf2f(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

// Element (r, c) of any weight, in any layout (kernels.h: q4_value, q4x16_value, q8x16_value).
__device__ float w_at(const DevW& w, uint64_t r, uint64_t c) {
  const uint64_t cols = w.cols;
  const bool x16 = w.rows16 && r < w.rows / 16 * 16;
  switch (w.dtype) {
    case kF32: return reinterpret_cast<const float*>(w.data)[r * cols + c];
    case kF16: return h2f(reinterpret_cast<const uint16_t*>(w.data)[r * cols + c]);
    case kBF16: return bf2f(reinterpret_cast<const uint16_t*>(w.data)[r * cols + c]);
    case kI8: {
      const float s = static_cast<const float*>(w.scales)[r];
      if (x16) return (static_cast<int>(w.data[(r / 16) * 16 * cols + (c / 4) * 64 + (r % 16) * 4 + (c % 4)]) - 128) * s;
      return static_cast<float>(reinterpret_cast<const int8_t*>(w.data)[r * cols + c]) * s;
    }
    default: {
      const uint64_t groups = cols / w.group, g = c / w.group;
      const uint16_t* sc = static_cast<const uint16_t*>(w.scales);
      if (x16) {
        const uint8_t b = w.data[(r / 16) * 8 * cols + (c / 8) * 64 + (r % 16) * 4 + (c % 4)];
        const int q = ((c % 8) < 4 ? (b & 0xF) : (b >> 4)) - 8;
        return q * h2f(sc[((r / 16) * groups + g) * 16 + r % 16]);
      }
      const uint8_t b = w.data[r * (cols / 2) + (c / 32) * 16 + (c % 16)];
      const int q = ((c % 32) < 16 ? (b & 0xF) : (b >> 4)) - 8;
      return q * h2f(sc[r * groups + g]);
    }
  }
}

// ---- gathers and products

__global__ void embed_k(DevW W, const int32_t* tokens, float* out, uint64_t d) {
  const uint64_t r = static_cast<uint64_t>(tokens[blockIdx.x]);
  for (uint64_t c = threadIdx.x; c < d; c += blockDim.x) out[blockIdx.x * d + c] = w_at(W, r, c);
}

void embed(const Exec& x, const TensorView& W, const int32_t* tokens, float* out, size_t n) {
  if (!n) return;
  RILL_LAUNCH(embed_k, static_cast<unsigned>(n), kThreads, 0, stream_of(x))(dev_w(W), tokens, out, W.cols());
}

constexpr int kTile = 32;  // tokens per pass over the weights in a prefill chunk or a batch
constexpr unsigned kWarpsPerBlock = 4;

// Row layouts: warp per row. Lane l takes 4 consecutive columns at l*4 + k*128 (cols a multiple of 4 for
// the vector loads; a scalar loop otherwise).
__device__ __forceinline__ void load4(const DevW& w, uint64_t r, uint64_t c, float v[4]) {
  const uint64_t cols = w.cols;
  switch (w.dtype) {
    case kF32: {
      const float4 f = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(w.data) + r * cols + c);
      v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
      return;
    }
    case kF16: {
      const uint2 u = *reinterpret_cast<const uint2*>(reinterpret_cast<const uint16_t*>(w.data) + r * cols + c);
      v[0] = h2f(u.x & 0xFFFF), v[1] = h2f(u.x >> 16), v[2] = h2f(u.y & 0xFFFF), v[3] = h2f(u.y >> 16);
      return;
    }
    case kBF16: {
      const uint2 u = *reinterpret_cast<const uint2*>(reinterpret_cast<const uint16_t*>(w.data) + r * cols + c);
      v[0] = bf2f(u.x & 0xFFFF), v[1] = bf2f(u.x >> 16), v[2] = bf2f(u.y & 0xFFFF), v[3] = bf2f(u.y >> 16);
      return;
    }
    case kI8: {
      const uint32_t u = *reinterpret_cast<const uint32_t*>(w.data + r * cols + c);
      for (int k = 0; k < 4; ++k) v[k] = static_cast<float>(static_cast<int8_t>((u >> (8 * k)) & 0xFF));
      return;  // the row's scale is applied once, at the end
    }
    default: {
      // 32-element blocks of 16 bytes: columns c..c+3 (c % 4 == 0) are 4 bytes' low or high nibbles.
      const uint32_t u = *reinterpret_cast<const uint32_t*>(w.data + r * (cols / 2) + (c / 32) * 16 + (c % 16));
      const int shift = (c % 32) < 16 ? 0 : 4;
      const float s = h2f(static_cast<const uint16_t*>(w.scales)[r * (cols / w.group) + c / w.group]);
      for (int k = 0; k < 4; ++k) v[k] = static_cast<float>(static_cast<int>((u >> (8 * k + shift)) & 0xF) - 8) * s;
      return;
    }
  }
}

// Bytes of weight payload one load4 (or one scalar w_at) reads, for the emulation's count.
__device__ __forceinline__ uint32_t load4_bytes(uint32_t dtype) {
  return dtype == kF32 ? 16 : dtype == kF16 || dtype == kBF16 ? 8 : 4;
}
__device__ __forceinline__ uint32_t elem_bytes(uint32_t dtype) {
  return dtype == kF32 ? 4 : dtype == kF16 || dtype == kBF16 ? 2 : 1;
}

// Tile tokens per pass over the weights: 1 for a decode step, kTile for a prefill chunk or a batch. nt
// (the tokens of this tile) is the same for the whole warp, so the per-token sums are uniform.
template <int Tile>
__global__ void matmul_rows_k(DevW w, uint64_t r0, uint64_t r1, const float* X, uint64_t ldx, float* Y, uint64_t ldy,
                              uint64_t n) {
  const uint64_t r = r0 + blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const unsigned lane = threadIdx.x % 32;
  const uint64_t t0 = blockIdx.y * static_cast<uint64_t>(Tile);
  if (r >= r1) return;
  const int nt = static_cast<int>(n - t0 < Tile ? n - t0 : Tile);
  float acc[Tile];
#pragma unroll
  for (int t = 0; t < Tile; ++t) acc[t] = 0.f;
  const uint64_t cols = w.cols;
  uint64_t bytes = 0;
  if (cols % 4 == 0) {
    for (uint64_t c = lane * 4; c < cols; c += 128) {
      float v[4];
      load4(w, r, c, v);
      bytes += load4_bytes(w.dtype);
#pragma unroll
      for (int t = 0; t < Tile; ++t)
        if (t < nt) {
          const float* xr = X + (t0 + t) * ldx + c;
          acc[t] += v[0] * xr[0] + v[1] * xr[1] + v[2] * xr[2] + v[3] * xr[3];
        }
    }
    if (w.dtype == kI8) {
      const float s = static_cast<const float*>(w.scales)[r];
#pragma unroll
      for (int t = 0; t < Tile; ++t) acc[t] *= s;
    }
  } else {
    for (uint64_t c = lane; c < cols; c += 32) {
      const float v = w_at(w, r, c);
      bytes += elem_bytes(w.dtype);
#pragma unroll
      for (int t = 0; t < Tile; ++t)
        if (t < nt) acc[t] += v * X[(t0 + t) * ldx + c];
    }
  }
#pragma unroll
  for (int t = 0; t < Tile; ++t)
    if (t < nt) {
      const float s = warp_sum(acc[t]);
      if (lane == 0) Y[(t0 + t) * ldy + r] = s;
    }
  RILL_COUNT_WEIGHT_BYTES(bytes);
}

// The 16-row layouts: warp per 16 rows. Lanes 0-15 read one 64-byte chunk (16 rows x 4 bytes), lanes
// 16-31 the next, so each step reads 128 contiguous bytes; lane l accumulates row l % 16, and the two
// half-warps' sums meet at the end. int8: a chunk is 4 columns; int4: 8 columns (low nibbles 0-3,
// high nibbles 4-7), with the row's group scale per chunk.
template <int Tile>
__global__ void matmul_x16_k(DevW w, const float* X, uint64_t ldx, float* Y, uint64_t ldy, uint64_t n) {
  const uint64_t g16 = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const unsigned lane = threadIdx.x % 32;
  const uint64_t t0 = blockIdx.y * static_cast<uint64_t>(Tile);
  if (g16 >= w.rows / 16) return;
  const int nt = static_cast<int>(n - t0 < Tile ? n - t0 : Tile);
  const uint64_t cols = w.cols, r = g16 * 16 + lane % 16;
  float acc[Tile];
#pragma unroll
  for (int t = 0; t < Tile; ++t) acc[t] = 0.f;
  uint64_t bytes = 0;
  if (w.dtype == kI8) {
    const unsigned char* base = w.data + g16 * 16 * cols;
    for (uint64_t k = lane / 16; k < cols / 4; k += 2) {
      const uint32_t u = *reinterpret_cast<const uint32_t*>(base + k * 64 + (lane % 16) * 4);
      bytes += 4;
      float v[4];
      for (int j = 0; j < 4; ++j) v[j] = static_cast<float>(static_cast<int>((u >> (8 * j)) & 0xFF) - 128);
#pragma unroll
      for (int t = 0; t < Tile; ++t)
        if (t < nt) {
          const float* xr = X + (t0 + t) * ldx + k * 4;
          acc[t] += v[0] * xr[0] + v[1] * xr[1] + v[2] * xr[2] + v[3] * xr[3];
        }
    }
    const float s = static_cast<const float*>(w.scales)[r];
#pragma unroll
    for (int t = 0; t < Tile; ++t) acc[t] *= s;
  } else {
    const unsigned char* base = w.data + g16 * 8 * cols;
    const uint16_t* sc = static_cast<const uint16_t*>(w.scales);
    const uint64_t groups = cols / w.group;
    for (uint64_t k = lane / 16; k < cols / 8; k += 2) {
      const uint32_t u = *reinterpret_cast<const uint32_t*>(base + k * 64 + (lane % 16) * 4);
      bytes += 4;
      const float s = h2f(sc[(g16 * groups + (k * 8) / w.group) * 16 + lane % 16]);
      float v[8];
      for (int j = 0; j < 4; ++j) {
        v[j] = static_cast<float>(static_cast<int>((u >> (8 * j)) & 0xF) - 8) * s;
        v[j + 4] = static_cast<float>(static_cast<int>((u >> (8 * j + 4)) & 0xF) - 8) * s;
      }
#pragma unroll
      for (int t = 0; t < Tile; ++t)
        if (t < nt) {
          const float* xr = X + (t0 + t) * ldx + k * 8;
          float a = 0.f;
          for (int j = 0; j < 8; ++j) a += v[j] * xr[j];
          acc[t] += a;
        }
    }
  }
#pragma unroll
  for (int t = 0; t < Tile; ++t)
    if (t < nt) {
      const float s = acc[t] + __shfl_xor_sync(0xffffffffu, acc[t], 16);
      if (lane < 16) Y[(t0 + t) * ldy + r] = s;
    }
  RILL_COUNT_WEIGHT_BYTES(bytes);
}

template <int Tile>
void matmul_tiled(const Exec& x, const DevW& w, const TensorView& W, const float* X, size_t ldx, float* Y, size_t ldy,
                  size_t n) {
  const unsigned tiles = static_cast<unsigned>((n + Tile - 1) / Tile);
  const bool x16 = W.rows16 && (W.dtype == DType::kI8 || W.dtype == DType::kI4);
  const uint64_t full = x16 ? W.rows() / 16 * 16 : 0;
  if (full) {
    const dim3 grid(grid_for(full / 16, kWarpsPerBlock), tiles);
    RILL_LAUNCH(matmul_x16_k<Tile>, grid, kWarpsPerBlock * 32, 0, stream_of(x))(w, X, ldx, Y, ldy, n);
  }
  if (full < W.rows()) {  // rows stored row by row: all of a row layout, the tail of a 16-row one
    const dim3 grid(grid_for(W.rows() - full, kWarpsPerBlock), tiles);
    RILL_LAUNCH(matmul_rows_k<Tile>, grid, kWarpsPerBlock * 32, 0, stream_of(x))(w, full, W.rows(), X, ldx, Y, ldy, n);
  }
}

// A decode step (one row) takes the one-token kernels; more rows take kTile tokens per pass, so a
// 64-token prefill chunk reads each weight twice.
void matmul_any(const Exec& x, const TensorView& W, const float* X, size_t ldx, float* Y, size_t ldy, size_t n) {
  if (!n || !W.rows()) return;
  const DevW w = dev_w(W);
  if (n == 1) matmul_tiled<1>(x, w, W, X, ldx, Y, ldy, n);
  else matmul_tiled<kTile>(x, w, W, X, ldx, Y, ldy, n);
}

// ---- norms

__global__ void rmsnorm_k(const float* X, const float* w, float* Y, uint64_t d, float eps) {
  const float* x = X + blockIdx.x * d;
  float ss = 0.f;
  for (uint64_t c = threadIdx.x; c < d; c += blockDim.x) ss += x[c] * x[c];
  const float inv = 1.f / sqrtf(block_sum(ss) / static_cast<float>(d) + eps);
  for (uint64_t c = threadIdx.x; c < d; c += blockDim.x) Y[blockIdx.x * d + c] = x[c] * inv * w[c];
}
void rmsnorm(const Exec& x, const float* X, const float* w, float* Y, size_t n, size_t d, float eps) {
  if (n) RILL_LAUNCH(rmsnorm_k, static_cast<unsigned>(n), kThreads, 0, stream_of(x))(X, w, Y, d, eps);
}

// Layer norm of `d` values at x (stride 1) into y, by one block.
__device__ void layernorm_block(const float* x, const float* w, const float* b, float* y, uint64_t d, float eps) {
  float s = 0.f;
  for (uint64_t c = threadIdx.x; c < d; c += blockDim.x) s += x[c];
  const float mu = block_sum(s) / static_cast<float>(d);
  float v = 0.f;
  for (uint64_t c = threadIdx.x; c < d; c += blockDim.x) v += (x[c] - mu) * (x[c] - mu);
  const float inv = 1.f / sqrtf(block_sum(v) / static_cast<float>(d) + eps);
  for (uint64_t c = threadIdx.x; c < d; c += blockDim.x) y[c] = (x[c] - mu) * inv * w[c] + b[c];
}
__global__ void layernorm_k(const float* X, const float* w, const float* b, float* Y, uint64_t d, float eps) {
  layernorm_block(X + blockIdx.x * d, w, b, Y + blockIdx.x * d, d, eps);
}
void layernorm(const Exec& x, const float* X, const float* w, const float* b, float* Y, size_t n, size_t d,
               float eps) {
  if (n) RILL_LAUNCH(layernorm_k, static_cast<unsigned>(n), kThreads, 0, stream_of(x))(X, w, b, Y, d, eps);
}
// Block (row i, head h).
__global__ void group_norm_k(float* Y, const float* w, const float* b, uint64_t H, uint64_t N, float eps) {
  const uint64_t i = blockIdx.x / H, h = blockIdx.x % H;
  float* y = Y + i * H * N + h * N;
  layernorm_block(y, w + h * N, b + h * N, y, N, eps);
}
void group_norm(const Exec& x, float* Y, const float* w, const float* b, size_t n, size_t H, size_t N, float eps) {
  if (n && H) RILL_LAUNCH(group_norm_k, static_cast<unsigned>(n * H), 64, 0, stream_of(x))(Y, w, b, H, N, eps);
}
// Block (row i, group g): y *= silu(z), then RMS over the group, * w.
__global__ void gated_rmsnorm_k(float* Y, const float* Z, uint64_t ldz, const float* w, uint64_t E, uint64_t G,
                                float eps) {
  const uint64_t i = blockIdx.x / G, g = blockIdx.x % G, gs = E / G;
  float* y = Y + i * E + g * gs;
  const float* z = Z + i * ldz + g * gs;
  float ss = 0.f;
  for (uint64_t c = threadIdx.x; c < gs; c += blockDim.x) {
    const float v = y[c] * siluf_(z[c]);
    y[c] = v;
    ss += v * v;
  }
  const float inv = 1.f / sqrtf(block_sum(ss) / static_cast<float>(gs) + eps);
  for (uint64_t c = threadIdx.x; c < gs; c += blockDim.x) y[c] = y[c] * inv * w[g * gs + c];
}
void gated_rmsnorm(const Exec& x, float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G,
                   float eps) {
  if (n && G) RILL_LAUNCH(gated_rmsnorm_k, static_cast<unsigned>(n * G), kThreads, 0, stream_of(x))(Y, Z, ldz, w, E, G, eps);
}

// ---- recurrences: rows in order, row i advancing its own state

__global__ void conv_k(unsigned char* const* base, uint64_t off, const float* w, const float* b, const float* X,
                       uint64_t ldx, float* Y, uint64_t n, uint64_t C, uint64_t K, bool silu) {
  const uint64_t c = thread_index();
  if (c >= C) return;
  for (uint64_t i = 0; i < n; ++i) {
    float* hist = state_row(base, i, off);
    const float xc = X[i * ldx + c];
    float acc = (b ? b[c] : 0.f) + w[(K - 1) * C + c] * xc;
    for (uint64_t k = 0; k + 1 < K; ++k) acc += w[k * C + c] * hist[k * C + c];
    Y[i * C + c] = silu ? siluf_(acc) : acc;
    for (uint64_t k = 0; k + 2 < K; ++k) hist[k * C + c] = hist[(k + 1) * C + c];
    if (K >= 2) hist[(K - 2) * C + c] = xc;
  }
}
void conv_step(const Exec& x, StateRef hist, const float* w, const float* b, const float* X, size_t ldx, float* Y,
               size_t n, size_t C, size_t K, bool silu) {
  if (n && C) RILL_LAUNCH(conv_k, grid_for(C), kThreads, 0, stream_of(x))(hist.base, hist.offset, w, b, X, ldx, Y, n, C, K, silu);
}

__global__ void ssm_scan_k(unsigned char* const* base, uint64_t off, const float* A, const float* dt, const float* X,
                           const float* B, const float* Cm, uint64_t ldbc, const float* D, const float* Z, uint64_t ldz,
                           float* Y, uint64_t n, uint64_t E, uint64_t N) {
  const uint64_t c = thread_index();
  if (c >= E) return;
  for (uint64_t i = 0; i < n; ++i) {
    float* s = state_row(base, i, off);
    const float d = dt[i * E + c], xc = X[i * E + c];
    float y = D[c] * xc;
    for (uint64_t j = 0; j < N; ++j) {
      const float v = expf(d * A[j * E + c]) * s[j * E + c] + d * B[i * ldbc + j] * xc;
      s[j * E + c] = v;
      y += v * Cm[i * ldbc + j];
    }
    Y[i * E + c] = y * siluf_(Z[i * ldz + c]);
  }
}
void ssm_scan(const Exec& x, StateRef s, const float* A, const float* dt, const float* X, const float* B,
              const float* C, size_t ldbc, const float* D, const float* Z, size_t ldz, float* Y, size_t n, size_t E,
              size_t N) {
  if (n && E)
    RILL_LAUNCH(ssm_scan_k, grid_for(E, 128), 128, 0, stream_of(x))(s.base, s.offset, A, dt, X, B, C, ldbc, D, Z, ldz, Y, n, E, N);
}

// Warp per (head h, channel p), lanes over the state dim: block (h, group of kRecWarps channels), so a
// head's channels spread over P / kRecWarps blocks. Each warp owns its state rows: no barrier.
constexpr unsigned kRecWarps = 4;
__global__ void ssd_k(unsigned char* const* base, uint64_t off, const float* X, const float* B, const float* C,
                      uint64_t ldx, const float* dt, const float* A, const float* D, float* Y, uint64_t n, uint64_t H,
                      uint64_t P, uint64_t N, uint64_t G) {
  const uint64_t h = blockIdx.x, g = h / (H / G), p = blockIdx.y * (blockDim.x / 32) + threadIdx.x / 32;
  const unsigned lane = threadIdx.x % 32;
  if (p >= P) return;
  for (uint64_t i = 0; i < n; ++i) {
    float* S = state_row(base, i, off);
    const float d = dt[i * H + h], a = expf(d * A[h]);
    const float* Bg = B + i * ldx + g * N;
    const float* Cg = C + i * ldx + g * N;
    {
      const uint64_t c = h * P + p;
      float* s = S + c * N;
      const float dtx = d * X[i * ldx + c];
      float acc = 0.f;
      for (uint64_t j = lane; j < N; j += 32) {
        const float v = a * s[j] + dtx * Bg[j];
        s[j] = v;
        acc += v * Cg[j];
      }
      acc = warp_sum(acc);
      if (lane == 0) Y[i * H * P + c] = acc + D[c] * X[i * ldx + c];
    }
  }
}
void ssd_step(const Exec& x, StateRef S, const float* X, const float* B, const float* C, size_t ldx, const float* dt,
              const float* A, const float* D, float* Y, size_t n, size_t H, size_t P, size_t N, size_t G,
              float* /*work: no chunked form here*/) {
  if (n && H && P)
    RILL_LAUNCH(ssd_k, dim3(static_cast<unsigned>(H), grid_for(P, kRecWarps)), kRecWarps * 32, 0, stream_of(x))(
        S.base, S.offset, X, B, C, ldx, dt, A, D, Y, n, H, P, N, G);
}

// Warp per (head h, value row i of S), lanes over the key index j: block (h, group of kRecWarps rows).
// Each warp owns its row of S: no barrier. a null: no delta term; read_first: y over the old row.
__global__ void wkv_k(unsigned char* const* base, uint64_t off, const float* r, const float* w, const float* k,
                      const float* v, const float* a, const float* b, float* Y, uint64_t n, uint64_t H, uint64_t K,
                      uint64_t V, bool read_first) {
  const uint64_t h = blockIdx.x, i = blockIdx.y * (blockDim.x / 32) + threadIdx.x / 32;
  const unsigned lane = threadIdx.x % 32;
  if (i >= V) return;
  for (uint64_t t = 0; t < n; ++t) {
    float* row = state_row(base, t, off) + (h * V + i) * K;
    const uint64_t o = t * H * K + h * K;
    float sa = 0.f;
    if (a) {
      for (uint64_t j = lane; j < K; j += 32) sa += row[j] * a[o + j];
      sa = warp_sum(sa);
    }
    float acc = 0.f;
    const float vi = v[t * H * V + h * V + i];
    for (uint64_t j = lane; j < K; j += 32) {
      if (read_first) acc += row[j] * r[o + j];
      float s = row[j] * w[o + j];
      if (a) s += sa * b[o + j];
      s += vi * k[o + j];
      row[j] = s;
      if (!read_first) acc += s * r[o + j];
    }
    acc = warp_sum(acc);
    if (lane == 0) Y[t * H * V + h * V + i] = acc;
  }
}
void wkv(const Exec& x, StateRef S, const float* r, const float* w, const float* k, const float* v, const float* a,
         const float* b, float* Y, size_t n, size_t H, size_t K, size_t V, bool read_first, float*) {
  // The recurrence for every run (the chunk form's workspace is not used): the bits of stepping.
  if (n && H && K && V)
    RILL_LAUNCH(wkv_k, dim3(static_cast<unsigned>(H), grid_for(V, kRecWarps)), kRecWarps * 32, 0, stream_of(x))(
        S.base, S.offset, r, w, k, v, a, b, Y, n, H, K, V, read_first);
}

__global__ void s4d_k(unsigned char* const* base, uint64_t off, const float* A, const float* Cm, const float* D,
                      const float* U, float* Y, uint64_t n, uint64_t H, uint64_t M) {
  const uint64_t h = thread_index();
  if (h >= H) return;
  for (uint64_t i = 0; i < n; ++i) {
    float* s = state_row(base, i, off);
    const float u = U[i * H + h];
    float y = 0.f;
    for (uint64_t m = 0; m < M; ++m) {
      float* sr = s + m * 2 * H;
      float* si = sr + H;
      const float ar = A[m * 2 * H + h], ai = A[m * 2 * H + H + h], cr = Cm[m * 2 * H + h], ci = Cm[m * 2 * H + H + h];
      const float re = ar * sr[h] - ai * si[h] + u, im = ar * si[h] + ai * sr[h];
      sr[h] = re;
      si[h] = im;
      y += cr * re - ci * im;
    }
    Y[i * H + h] = 2.f * y + D[h] * u;
  }
}
void s4d_step(const Exec& x, StateRef s, const float* A, const float* C, const float* D, const float* U, float* Y,
              size_t n, size_t H, size_t M) {
  if (n && H) RILL_LAUNCH(s4d_k, grid_for(H), kThreads, 0, stream_of(x))(s.base, s.offset, A, C, D, U, Y, n, H, M);
}

// One block: the count is shared by the row's channels.
__global__ void running_mean_k(unsigned char* const* mbase, uint64_t moff, unsigned char* const* cbase, uint64_t coff,
                               float* X, uint64_t n, uint64_t d) {
  for (uint64_t i = 0; i < n; ++i) {
    float* m = state_row(mbase, i, moff);
    float* cnt = state_row(cbase, i, coff);
    float c = *cnt;
    if (c < 16777216.f) c += 1.f;
    const float inv = 1.f / c;
    for (uint64_t j = threadIdx.x; j < d; j += blockDim.x) {
      m[j] += (X[i * d + j] - m[j]) * inv;
      X[i * d + j] = m[j];
    }
    __syncthreads();
    if (threadIdx.x == 0) *cnt = c;
    __syncthreads();
  }
}
void running_mean(const Exec& x, StateRef mean, StateRef count, float* X, size_t n, size_t d) {
  if (n) RILL_LAUNCH(running_mean_k, 1, kThreads, 0, stream_of(x))(mean.base, mean.offset, count.base, count.offset, X, n, d);
}

__global__ void positions_k(unsigned char* const* base, uint64_t off, int64_t* P, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    int64_t* p = reinterpret_cast<int64_t*>(base[i] + off);
    P[i] = *p;
    *p = *p < INT64_MAX ? *p + 1 : *p;
  }
}
void positions(const Exec& x, StateRef pos, int64_t* P, size_t n) {
  if (n) RILL_LAUNCH(positions_k, 1, 1, 0, stream_of(x))(pos.base, pos.offset, P, n);
}

__global__ void rglru_k(unsigned char* const* base, uint64_t off, const float* X, const float* GX, const float* GA,
                        const float* c, const int64_t* P, float* Y, uint64_t n, uint64_t W) {
  const uint64_t j = thread_index();
  if (j >= W) return;
  for (uint64_t i = 0; i < n; ++i) {
    float* s = state_row(base, i, off);
    const uint64_t o = i * W;
    const bool first = P[i] == 0;
    const float log_a = -c[j] * sigmoidf_(GA[o + j]);
    const float a = expf(log_a);
    float u = X[o + j] * sigmoidf_(GX[o + j]);
    if (!first) u *= sqrtf(1.f - expf(2.f * log_a));
    s[j] = (first ? 0.f : a * s[j]) + u;
    Y[o + j] = s[j];
  }
}
void rglru(const Exec& x, StateRef h, const float* X, const float* GX, const float* GA, const float* c,
           const int64_t* P, float* Y, size_t n, size_t W) {
  if (n && W) RILL_LAUNCH(rglru_k, grid_for(W), kThreads, 0, stream_of(x))(h.base, h.offset, X, GX, GA, c, P, Y, n, W);
}

__global__ void rope_k(float* Y, uint64_t ldy, const int64_t* P, uint64_t n, uint64_t heads, uint64_t D, uint64_t R,
                       float theta) {
  const uint64_t half = R / 2, id = thread_index();
  if (id >= n * heads * half) return;
  const uint64_t j = id % half, hd = (id / half) % heads, i = id / (half * heads);
  const float inv = 1.f / powf(theta, static_cast<float>(2 * j) / static_cast<float>(R));
  const float f = static_cast<float>(P[i]) * inv, cs = cosf(f), sn = sinf(f);
  float* y = Y + i * ldy + hd * D;
  const float a = y[j], b = y[j + half];
  y[j] = a * cs - b * sn;
  y[j + half] = b * cs + a * sn;
}
void rope(const Exec& x, float* Y, size_t ldy, const int64_t* P, size_t n, size_t heads, size_t D, size_t R,
          float theta) {
  const size_t total = n * heads * (R / 2);
  if (total) RILL_LAUNCH(rope_k, grid_for(total), kThreads, 0, stream_of(x))(Y, ldy, P, n, heads, D, R, theta);
}

__device__ __forceinline__ float ring_at(const unsigned char* base, bool f16, uint64_t idx) {
  return f16 ? __half2float(reinterpret_cast<const __half*>(base)[idx]) : reinterpret_cast<const float*>(base)[idx];
}
// Attention in two launches per pass: every (head, row) block attends at once, then every row's key and
// value go into its ring. A row reads the keys and values of its stream's earlier rows in this pass from
// Kn / Vn (rounded as the ring would hold them) and older ones from the ring, which no row of the pass
// has written yet. A stream's rows in a pass have consecutive positions in row order (positions() gives
// them so); they are usually contiguous (a prefill chunk) or one (a batch), and may be interleaved.
__device__ __forceinline__ float as_stored(bool f16, float v) { return f16 ? __half2float(__float2half_rn(v)) : v; }

// Row i's stream in this pass: its rows j0..i are contiguous, `before` more come earlier.
struct StreamRows {
  unsigned char* const* kb;
  uint64_t i, j0, before;
  // The row that holds the stream's k-th row of the pass (k <= its rows up to i).
  __device__ uint64_t row(uint64_t k) const {
    if (k >= before) return j0 + (k - before);
    for (uint64_t j = 0; j < j0; ++j)
      if (kb[j] == kb[i] && k-- == 0) return j;
    return i;
  }
};
__device__ StreamRows stream_rows(unsigned char* const* kb, uint64_t i) {
  StreamRows r{kb, i, i, 0};
  while (r.j0 > 0 && kb[r.j0 - 1] == kb[i]) --r.j0;
  for (uint64_t j = 0; j < r.j0; ++j) r.before += kb[j] == kb[i];
  return r;
}

// Block (head h, row row0 + blockIdx.y); the scores in dynamic shared memory (window floats), or in
// scores [H, window] (global memory) when that is given.
__global__ void attend_rows_k(unsigned char* const* kb, uint64_t koff, unsigned char* const* vb, uint64_t voff,
                              bool f16, const float* Q, const float* Kn, const float* Vn, const int64_t* P, float* Y,
                              uint64_t H, uint64_t KV, uint64_t D, uint64_t window, float scale, uint64_t row0,
                              float* scores) {
  RILL_DYNAMIC_SHARED(float, shared_scores);
  const uint64_t h = blockIdx.x, i = row0 + blockIdx.y, g = h / (H / KV), kvd = KV * D;
  float* sc = scores ? scores + h * window : shared_scores;
  const StreamRows rows = stream_rows(kb, i);
  const int64_t pi = P[i], first = pi - static_cast<int64_t>(i - rows.j0 + rows.before);  // the pass's first
  const uint64_t filled = static_cast<uint64_t>(pi) + 1 < window ? static_cast<uint64_t>(pi) + 1 : window;
  const unsigned char* K = kb[i] + koff;
  const unsigned char* V = vb[i] + voff;
  const float* q = Q + i * H * D + h * D;
  const unsigned lane = threadIdx.x % 32, warps = blockDim.x / 32;
  // Slot s holds position pi - filled + 1 + s.
  for (uint64_t s = threadIdx.x / 32; s < filled; s += warps) {  // warp per slot, lanes over the head dim
    const int64_t pos = pi - static_cast<int64_t>(filled) + 1 + static_cast<int64_t>(s);
    float dot = 0.f;
    if (pos >= first) {
      const float* k = Kn + rows.row(static_cast<uint64_t>(pos - first)) * kvd + g * D;
      for (uint64_t j = lane; j < D; j += 32) dot += q[j] * as_stored(f16, k[j]);
    } else {
      const uint64_t at = static_cast<uint64_t>(pos) % window * kvd + g * D;
      for (uint64_t j = lane; j < D; j += 32) dot += q[j] * ring_at(K, f16, at + j);
    }
    dot = warp_sum(dot);
    if (lane == 0) sc[s] = dot * scale;
  }
  __syncthreads();
  float mx = -INFINITY;
  for (uint64_t s = threadIdx.x; s < filled; s += blockDim.x) mx = fmaxf(mx, sc[s]);
  mx = block_max(mx);
  float sum = 0.f;
  for (uint64_t s = threadIdx.x; s < filled; s += blockDim.x) {
    const float e = expf(sc[s] - mx);
    sc[s] = e;
    sum += e;
  }
  const float inv = 1.f / block_sum(sum);  // block_sum's barriers order the writes to sc before the reads
  for (uint64_t j = threadIdx.x; j < D; j += blockDim.x) {
    float acc = 0.f;
    for (uint64_t s = 0; s < filled; ++s) {
      const int64_t pos = pi - static_cast<int64_t>(filled) + 1 + static_cast<int64_t>(s);
      const float v = pos >= first ? as_stored(f16, Vn[rows.row(static_cast<uint64_t>(pos - first)) * kvd + g * D + j])
                                   : ring_at(V, f16, static_cast<uint64_t>(pos) % window * kvd + g * D + j);
      acc += sc[s] * v;
    }
    Y[i * H * D + h * D + j] = acc * inv;
  }
}

// Block (channels, row i): row i's key and value into slot P[i] % window, unless a later row of its
// stream in this pass takes the same slot (it is `window` positions on).
__global__ void ring_write_rows_k(unsigned char* const* kb, uint64_t koff, unsigned char* const* vb, uint64_t voff,
                                  bool f16, const float* Kn, const float* Vn, const int64_t* P, uint64_t n, uint64_t kvd,
                                  uint64_t window) {
  const uint64_t j = thread_index(), i = blockIdx.y;
  if (j >= kvd) return;
  uint64_t later = 0;
  for (uint64_t r = i + 1; r < n && later < window; ++r) later += kb[r] == kb[i];
  if (later >= window) return;
  const uint64_t slot = static_cast<uint64_t>(P[i]) % window;
  if (f16) {
    reinterpret_cast<__half*>(kb[i] + koff)[slot * kvd + j] = __float2half_rn(Kn[i * kvd + j]);
    reinterpret_cast<__half*>(vb[i] + voff)[slot * kvd + j] = __float2half_rn(Vn[i * kvd + j]);
  } else {
    reinterpret_cast<float*>(kb[i] + koff)[slot * kvd + j] = Kn[i * kvd + j];
    reinterpret_cast<float*>(vb[i] + voff)[slot * kvd + j] = Vn[i * kvd + j];
  }
}

void attend(const Exec& x, StateRef Kr, StateRef Vr, bool f16, const float* Q, const float* Kn, const float* Vn,
            const int64_t* P, float* Y, size_t n, size_t H, size_t KV, size_t D, size_t window, float scale,
            float* scores) {
  if (!n || !H) return;
  if (window * sizeof(float) <= kMaxDynamicShared && n <= 65535) {
    RILL_LAUNCH(attend_rows_k, dim3(static_cast<unsigned>(H), static_cast<unsigned>(n)), kThreads,
                window * sizeof(float), stream_of(x))(Kr.base, Kr.offset, Vr.base, Vr.offset, f16, Q, Kn, Vn, P, Y, H,
                                                      KV, D, window, scale, 0, nullptr);
  } else {  // scores that do not fit in shared memory: a row at a time, in `scores` ([H, window])
    for (size_t i = 0; i < n; ++i)
      RILL_LAUNCH(attend_rows_k, static_cast<unsigned>(H), kThreads, 0, stream_of(x))(
          Kr.base, Kr.offset, Vr.base, Vr.offset, f16, Q, Kn, Vn, P, Y, H, KV, D, window, scale, i, scores);
  }
  RILL_LAUNCH(ring_write_rows_k, dim3(grid_for(KV * D), static_cast<unsigned>(n)), kThreads, 0, stream_of(x))(
      Kr.base, Kr.offset, Vr.base, Vr.offset, f16, Kn, Vn, P, n, KV * D, window);
}

__global__ void token_shift_k(unsigned char* const* base, uint64_t off, const float* U, const float* mix,
                              const float* D, uint64_t ldd, uint64_t k, float* Y, uint64_t ldy, uint64_t n, uint64_t C,
                              bool advance) {
  const uint64_t c = thread_index();
  if (c >= C) return;
  for (uint64_t i = 0; i < n; ++i) {
    float* p = state_row(base, i, off);
    const float* src = p;  // without advancing: the input of the last row before of the same stream
    for (uint64_t j = i; !advance && j-- > 0;)
      if (state_row(base, j, off) == p) {
        src = U + j * C;
        break;
      }
    const float uc = U[i * C + c], d = src[c] - uc;
    if (advance) p[c] = uc;
    for (uint64_t j = 0; j < k; ++j)
      Y[i * ldy + j * C + c] = uc + d * (D ? mix[j * C + c] + D[i * ldd + j * C + c] : mix[j * C + c]);
  }
}
void token_shift(const Exec& x, StateRef prev, const float* U, const float* mix, const float* D, size_t ldd, size_t k,
                 float* Y, size_t ldy, size_t n, size_t C, bool advance) {
  if (n && C)
    RILL_LAUNCH(token_shift_k, grid_for(C), kThreads, 0, stream_of(x))(prev.base, prev.offset, U, mix, D, ldd, k, Y,
                                                                      ldy, n, C, advance);
}

// ---- gates and activations (elementwise over `count`, or over n rows of d)

#define RILL_ELEMENTWISE(name, count_expr, body)                                                     \
  do {                                                                                               \
    const size_t total_ = (count_expr);                                                              \
    if (total_) RILL_LAUNCH(name, grid_for(total_), kThreads, 0, stream_of(x)) body;                          \
  } while (0)

__global__ void softplus_dt_k(const float* X, uint64_t ldx, const float* bias, float* Y, uint64_t n, uint64_t len,
                              float lo, float hi) {
  const uint64_t id = thread_index();
  if (id >= n * len) return;
  const uint64_t i = id / len, c = id % len;
  const float v = softplusf_(X[i * ldx + c] + bias[c]);
  Y[i * len + c] = v < lo ? lo : (v > hi ? hi : v);
}
void softplus_dt(const Exec& x, const float* X, size_t ldx, const float* bias, float* Y, size_t n, size_t len, float lo,
                 float hi) {
  // In place (Y == X with ldx == len) is safe: each element is read and written by one thread.
  RILL_ELEMENTWISE(softplus_dt_k, n * len, (X, ldx, bias, Y, n, len, lo, hi));
}

__global__ void act_k(int kind, float* Y, uint64_t count) {
  const uint64_t i = thread_index();
  if (i >= count) return;
  const float y = Y[i];
  float r;
  switch (kind) {
    case 0: r = tanhf(y); break;
    case 1: r = sigmoidf_(y); break;
    case 2: r = y > 0.f ? y * y : 0.f; break;
    case 3: r = expf(-0.6065306597126334f * sigmoidf_(y)); break;
    case 4: r = 0.5f * y * (1.f + erff(y * 0.7071067811865476f)); break;
    case 5: r = 0.5f * y * (1.f + tanhf(0.7978845608028654f * (y + 0.044715f * y * y * y))); break;
    case 7: r = softplusf_(y); break;
    case 8: r = expf(-expf(y)); break;
    default: r = y * sigmoidf_(y); break;  // 6: SiLU
  }
  Y[i] = r;
}
void act(const Exec& x, Act kind, float* Y, size_t count) { RILL_ELEMENTWISE(act_k, count, (static_cast<int>(kind), Y, count)); }

__global__ void add_k(float* Y, const float* X, uint64_t count) {
  const uint64_t i = thread_index();
  if (i < count) Y[i] += X[i];
}
void add(const Exec& x, float* Y, const float* X, size_t count) { RILL_ELEMENTWISE(add_k, count, (Y, X, count)); }

__global__ void scale_k(float* Y, float s, uint64_t count) {
  const uint64_t i = thread_index();
  if (i < count) Y[i] *= s;
}
void scale(const Exec& x, float* Y, float s, size_t count) { RILL_ELEMENTWISE(scale_k, count, (Y, s, count)); }

__global__ void add_bias_k(float* Y, const float* b, uint64_t n, uint64_t d) {
  const uint64_t i = thread_index();
  if (i < n * d) Y[i] += b[i % d];
}
void add_bias(const Exec& x, float* Y, const float* b, size_t n, size_t d) { RILL_ELEMENTWISE(add_bias_k, n * d, (Y, b, n, d)); }

__global__ void mul_k(float* Y, const float* X, uint64_t count) {
  const uint64_t i = thread_index();
  if (i < count) Y[i] *= X[i];
}
void mul(const Exec& x, float* Y, const float* X, size_t count) { RILL_ELEMENTWISE(mul_k, count, (Y, X, count)); }

__global__ void lerp_k(float* Y, const float* X, const float* T, uint64_t count) {
  const uint64_t i = thread_index();
  if (i < count) Y[i] += (X[i] - Y[i]) * T[i];
}
void lerp(const Exec& x, float* Y, const float* X, const float* T, size_t count) {
  RILL_ELEMENTWISE(lerp_k, count, (Y, X, T, count));
}

__global__ void glu_k(const float* X, float* Y, uint64_t n, uint64_t H) {
  const uint64_t id = thread_index();
  if (id >= n * H) return;
  const uint64_t i = id / H, c = id % H;
  Y[id] = X[i * 2 * H + c] * sigmoidf_(X[i * 2 * H + H + c]);
}
void glu(const Exec& x, const float* X, float* Y, size_t n, size_t H) { RILL_ELEMENTWISE(glu_k, n * H, (X, Y, n, H)); }

__global__ void standardize_k(float* X, const float* mean, const float* sd, uint64_t n, uint64_t d) {
  const uint64_t i = thread_index();
  if (i < n * d) X[i] = (X[i] - mean[i % d]) / sd[i % d];
}
void standardize(const Exec& x, float* X, const float* mean, const float* sd, size_t n, size_t d) {
  RILL_ELEMENTWISE(standardize_k, n * d, (X, mean, sd, n, d));
}

// Block (row i, head h).
__global__ void wkv7_keys_k(float* K, const float* A, const float* k_k, const float* k_a, float* NA, float* B,
                            uint64_t H, uint64_t N) {
  const uint64_t i = blockIdx.x / H, h = blockIdx.x % H, o = i * H * N + h * N;
  float ss = 0.f;
  for (uint64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float kk = K[o + j] * k_k[h * N + j];
    ss += kk * kk;
  }
  const float inv = 1.f / fmaxf(sqrtf(block_sum(ss)), 1e-12f);
  for (uint64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float kk = K[o + j] * k_k[h * N + j] * inv, a = A[o + j];
    K[o + j] *= 1.f + (a - 1.f) * k_a[h * N + j];
    B[o + j] = kk * a;
    NA[o + j] = -kk;
  }
}
void wkv7_keys(const Exec& x, float* K, const float* A, const float* k_k, const float* k_a, float* NA, float* B,
               size_t n, size_t H, size_t N) {
  if (n && H) RILL_LAUNCH(wkv7_keys_k, static_cast<unsigned>(n * H), 64, 0, stream_of(x))(K, A, k_k, k_a, NA, B, H, N);
}

// Block per (row i, value head hv).
__global__ void delta_keys_k(const float* X, uint64_t ldx, const float* dt, const float* A, const float* Bl, uint64_t ldb,
                             float beta_scale, float* R, float* W, float* Kn, float* B, float* Vout, uint64_t H,
                             uint64_t Hv, uint64_t K, uint64_t Vd) {
  const uint64_t i = blockIdx.x / Hv, hv = blockIdx.x % Hv, hk = hv / (Hv / H);
  const float* qh = X + i * ldx + hk * K;
  const float* kh = X + i * ldx + H * K + hk * K;
  const float* v = X + i * ldx + 2 * H * K + hv * Vd;
  float sq = 0.f, sk = 0.f;
  for (uint64_t j = threadIdx.x; j < K; j += blockDim.x) sq += qh[j] * qh[j], sk += kh[j] * kh[j];
  const float iq = 1.f / sqrtf(static_cast<float>(K)) / sqrtf(block_sum(sq) + 1e-6f);
  const float ik = 1.f / sqrtf(block_sum(sk) + 1e-6f);
  const float alpha = expf(A[hv] * dt[i * Hv + hv]), beta = beta_scale * sigmoidf_(Bl[i * ldb + hv]);
  const uint64_t o = (i * Hv + hv) * K;
  for (uint64_t j = threadIdx.x; j < K; j += blockDim.x) {
    const float kk = kh[j] * ik;
    R[o + j] = qh[j] * iq;
    W[o + j] = alpha;
    Kn[o + j] = kk;
    B[o + j] = -alpha * beta * kk;
  }
  for (uint64_t c = threadIdx.x; c < Vd; c += blockDim.x) Vout[(i * Hv + hv) * Vd + c] = beta * v[c];
}
void delta_keys(const Exec& x, const float* X, size_t ldx, const float* dt, const float* A, const float* Bl, size_t ldb,
                float beta_scale, float* R, float* W, float* Kn, float* B, float* Vout, size_t n, size_t H, size_t Hv,
                size_t K, size_t Vd) {
  if (n && Hv)
    RILL_LAUNCH(delta_keys_k, static_cast<unsigned>(n * Hv), 64, 0, stream_of(x))(X, ldx, dt, A, Bl, ldb, beta_scale, R,
                                                                                 W, Kn, B, Vout, H, Hv, K, Vd);
}

__global__ void gate_keys_k(const float* X, uint64_t ldx, const float* G, uint64_t ldg, const float* gamma,
                            float normalizer, float scale, float* R, float* W, float* Kn, float* Vout, uint64_t n,
                            uint64_t H, uint64_t K, uint64_t Vd) {
  const uint64_t id = thread_index(), kd = H * K, vd = H * Vd, per = 2 * kd + vd;
  if (id >= n * per) return;
  const uint64_t i = id / per, c = id % per;
  const float* x = X + i * ldx;
  if (c < kd) {
    R[i * kd + c] = x[c] * scale;
    if (G) {
      const float g = G[i * ldg + c];
      W[i * kd + c] = expf((fminf(g, 0.f) - log1pf(expf(-fabsf(g)))) / normalizer);
    } else {
      W[i * kd + c] = gamma[c / K];
    }
  } else if (c < 2 * kd) {
    Kn[i * kd + c - kd] = x[c];
  } else {
    Vout[i * vd + c - 2 * kd] = x[c];
  }
}
void gate_keys(const Exec& x, const float* X, size_t ldx, const float* G, size_t ldg, const float* gamma,
               float normalizer, float scale, float* R, float* W, float* Kn, float* Vout, size_t n, size_t H, size_t K,
               size_t Vd) {
  RILL_ELEMENTWISE(gate_keys_k, n * (2 * H * K + H * Vd), (X, ldx, G, ldg, gamma, normalizer, scale, R, W, Kn, Vout, n, H, K, Vd));
}

__global__ void wkv7_bonus_k(float* Y, const float* R, const float* K, const float* r_k, const float* V, uint64_t H,
                             uint64_t N) {
  const uint64_t i = blockIdx.x / H, h = blockIdx.x % H, o = i * H * N + h * N;
  float s = 0.f;
  for (uint64_t j = threadIdx.x; j < N; j += blockDim.x) s += R[o + j] * K[o + j] * r_k[h * N + j];
  const float bonus = block_sum(s);
  for (uint64_t j = threadIdx.x; j < N; j += blockDim.x) Y[o + j] += bonus * V[o + j];
}
void wkv7_bonus(const Exec& x, float* Y, const float* R, const float* K, const float* r_k, const float* V, size_t n,
                size_t H, size_t N) {
  if (n && H) RILL_LAUNCH(wkv7_bonus_k, static_cast<unsigned>(n * H), 64, 0, stream_of(x))(Y, R, K, r_k, V, H, N);
}

const Ops kCudaOps = {
    .embed = embed,
    .matmul_by_dtype = {matmul_any, matmul_any, matmul_any, matmul_any, matmul_any},
    .rmsnorm = rmsnorm,
    .layernorm = layernorm,
    .group_norm = group_norm,
    .gated_rmsnorm = gated_rmsnorm,
    .conv_step = conv_step,
    .ssm_scan = ssm_scan,
    .ssd_step = ssd_step,
    .wkv = wkv,
    .s4d_step = s4d_step,
    .running_mean = running_mean,
    .positions = positions,
    .rglru = rglru,
    .rope = rope,
    .attend = attend,
    .token_shift = token_shift,
    .softplus_dt = softplus_dt,
    .act = act,
    .add = add,
    .scale = scale,
    .add_bias = add_bias,
    .mul = mul,
    .lerp = lerp,
    .glu = glu,
    .standardize = standardize,
    .wkv7_keys = wkv7_keys,
    .wkv7_bonus = wkv7_bonus,
    .delta_keys = delta_keys,
    .gate_keys = gate_keys,
};

// ---- memory

cudaError_t dev_malloc(void** p, size_t bytes) {
  const cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
  if (e == cudaSuccess) ++g_allocs;
  return e;
}
void dev_free(const void* p) {
  if (p && cudaFree(const_cast<void*>(p)) == cudaSuccess) ++g_frees;
}
cudaError_t host_malloc(void** p, size_t bytes) {
  const cudaError_t e = cudaHostAlloc(p, bytes ? bytes : 1, cudaHostAllocDefault);
  if (e == cudaSuccess) ++g_allocs;
  return e;
}
void host_free(void* p) {
  if (p && cudaFreeHost(p) == cudaSuccess) ++g_frees;
}

// Bytes this device can still give: cudaMemGetInfo on a discrete GPU; on an integrated one (Jetson) the
// driver sees the OS's memory, so MemAvailable from /proc/meminfo (free plus reclaimable) where it is
// lower (the Tegra application note's estimate).
size_t available_bytes(const cudaDeviceProp& prop) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
  if (prop.integrated) {
    if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
      char line[256];
      unsigned long long kb = 0;
      while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
      std::fclose(f);
      if (kb && kb * 1024ull < free_b) free_b = static_cast<size_t>(kb * 1024ull);
    }
  }
  return free_b;
}

__global__ void noop_k() {}

// Work outside a pass (probe, weights, state copies, resets, the bandwidth probe) runs on a private
// non-blocking stream per device and waits for it: never on the legacy default stream, which would
// synchronize with (and, during another thread's capture, break) the blocking streams.
constexpr int kMaxDevices = 64;
cudaStream_t helper_stream(int device) {
  static std::once_flag once[kMaxDevices];
  static cudaStream_t streams[kMaxDevices];
  if (device < 0 || device >= kMaxDevices) return nullptr;
  std::call_once(once[device], [device] {
    if (cudaSetDevice(device) == cudaSuccess) cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking);
  });
  return streams[device];
}
cudaStream_t current_helper() {
  int device = 0;
  return cudaGetDevice(&device) == cudaSuccess ? helper_stream(device) : nullptr;
}
// A copy on the helper stream, waited for: the first error of queueing it or running it.
cudaError_t copy_sync(cudaStream_t s, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (!s) return cudaErrorInvalidResourceHandle;
  if (!bytes) return cudaSuccess;
  const cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, s);
  const cudaError_t done = cudaStreamSynchronize(s);
  return e != cudaSuccess ? e : done;
}

Status probe(int device, Error* err) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    if (driver == 0)
      return fail(err, Status::kNoBackend, "no CUDA device: no NVIDIA driver is loaded (%s)", cudaGetErrorName(e));
    return fail(err, Status::kNoBackend, "no CUDA device: %s (driver CUDA %d.%d, this build's runtime %d.%d)",
                cudaGetErrorString(e), driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
  }
  if (device < 0 || device >= count)
    return fail(err, Status::kNoBackend, "no CUDA device %d (this machine has %d)", device, count);
  if ((e = cudaSetDevice(device)) != cudaSuccess)
    return fail(err, Status::kNoBackend, "CUDA device %d: %s", device, cudaGetErrorString(e));
  const cudaStream_t hs = helper_stream(device);
  if (!hs) return fail(err, Status::kNoBackend, "CUDA device %d: cannot create a stream", device);
  cudaGetLastError();  // an earlier call's error on this thread is not this probe's
  RILL_LAUNCH(noop_k, 1, 1, 0, hs)();  // this build carries code the device can run (a cubin for it, or PTX to JIT)
  if ((e = cudaGetLastError()) != cudaSuccess || (e = cudaStreamSynchronize(hs)) != cudaSuccess) {
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, device);
    return fail(err, Status::kNoBackend, "CUDA device %d (%s, sm_%d%d) cannot run this build: %s", device, prop.name,
                prop.major, prop.minor, cudaGetErrorString(e));
  }
  return Status::kOk;
}

Status place_weights(int device, const unsigned char* data, uint64_t bytes, const unsigned char** out, Error* err) {
  cudaSetDevice(device);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device);
  const size_t avail = available_bytes(prop);
  if (bytes > avail)
    return fail(err, Status::kOutOfMemory, "weights need %.1f MiB; CUDA device %d (%s%s) has %.1f MiB available",
                bytes / 1048576.0, device, prop.name, prop.integrated ? ", integrated" : "", avail / 1048576.0);
  void* p = nullptr;
  cudaError_t e = dev_malloc(&p, bytes);
  if (e != cudaSuccess)
    return fail(err, Status::kOutOfMemory, "cudaMalloc of %.1f MiB of weights: %s", bytes / 1048576.0,
                cudaGetErrorString(e));
  // One pass over the file's bytes, in pieces (the mapped pages are read once; on an integrated GPU the
  // kernels then read only device memory, never the pageable mapping).
  constexpr uint64_t kPiece = uint64_t(64) << 20;
  const cudaStream_t hs = helper_stream(device);
  for (uint64_t at = 0; at < bytes && e == cudaSuccess; at += kPiece)
    e = copy_sync(hs, static_cast<unsigned char*>(p) + at, data + at, bytes - at < kPiece ? bytes - at : kPiece,
                  cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    dev_free(p);
    return fail(err, Status::kIo, "copying the weights to CUDA device %d: %s", device, cudaGetErrorString(e));
  }
  *out = static_cast<const unsigned char*>(p);
  return Status::kOk;
}

void release_weights(const unsigned char* w) { dev_free(w); }

struct CudaPass {
  int device = 0;
  cudaGraph_t graph[kMaxRecorded] = {};
  cudaGraphExec_t exec[kMaxRecorded] = {};
};

void close(DevicePass* p) {
  if (auto* c = static_cast<CudaPass*>(p->impl)) {
    cudaSetDevice(c->device);
    for (uint32_t k = 0; k < kMaxRecorded; ++k) {
      if (c->exec[k]) cudaGraphExecDestroy(c->exec[k]);
      if (c->graph[k]) cudaGraphDestroy(c->graph[k]);
    }
    delete c;
  }
  if (p->stream) cudaStreamDestroy(static_cast<cudaStream_t>(p->stream));
  dev_free(p->arena);
  host_free(p->io);
  p->arena = p->io = nullptr;
  p->stream = p->impl = nullptr;
}

Status open(int device, size_t arena_bytes, size_t io_bytes, DevicePass* out, Error* err) {
  cudaSetDevice(device);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device);
  const size_t avail = available_bytes(prop);
  if (arena_bytes > avail)
    return fail(err, Status::kOutOfMemory, "a session needs %.1f MiB of device memory; CUDA device %d has %.1f MiB available",
                arena_bytes / 1048576.0, device, avail / 1048576.0);
  auto* c = new (std::nothrow) CudaPass;
  if (!c) return fail(err, Status::kOutOfMemory, "cannot allocate a CUDA pass");
  c->device = device;
  out->impl = c;
  void* arena = nullptr;
  void* io = nullptr;
  cudaStream_t s = nullptr;
  cudaError_t e = dev_malloc(&arena, arena_bytes);
  if (e == cudaSuccess) out->arena = static_cast<unsigned char*>(arena), e = host_malloc(&io, io_bytes);
  // Non-blocking: the legacy stream (another library's, or a thread's) never waits for a pass, nor
  // breaks its capture.
  if (e == cudaSuccess) out->io = static_cast<unsigned char*>(io), e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e == cudaSuccess) out->stream = s;
  if (e != cudaSuccess) {
    close(out);
    return fail(err, Status::kOutOfMemory, "CUDA device %d: %zu bytes of session memory: %s", device, arena_bytes,
                cudaGetErrorString(e));
  }
  return Status::kOk;
}

void to_device(const DevicePass& p, void* dst, const void* src, size_t bytes) {
  if (bytes) cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(p.stream));
}
void to_host(const DevicePass& p, void* dst, const void* src, size_t bytes) {
  if (bytes) cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(p.stream));
}

// The pass's errors: its stream's (from synchronizing it), and its launches' (this thread's last error,
// which enter() cleared when the pass began, so an earlier failure elsewhere is not this pass's).
Status sync(const DevicePass& p) {
  const cudaError_t done = cudaStreamSynchronize(static_cast<cudaStream_t>(p.stream));
  const cudaError_t launch = cudaGetLastError();
  return launch == cudaSuccess && done == cudaSuccess ? Status::kOk : Status::kDeviceError;
}

Status record(DevicePass* p, uint32_t key, PassFn fn, const void* arg, size_t, Error* err) {
  auto* c = static_cast<CudaPass*>(p->impl);
  if (key >= kMaxRecorded) return fail(err, Status::kInvalidArgument, "record key %u", key);
  const cudaStream_t s = static_cast<cudaStream_t>(p->stream);
  cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  if (e == cudaSuccess) {
    fn(arg);
    e = cudaStreamEndCapture(s, &c->graph[key]);
  }
  if (e == cudaSuccess) e = cudaGraphInstantiate(&c->exec[key], c->graph[key], 0);
  if (e == cudaSuccess) e = cudaGraphUpload(c->exec[key], s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fail(err, Status::kDeviceError, "capturing the decode step as a CUDA graph: %s", cudaGetErrorString(e));
  }
  return Status::kOk;
}

bool replay(const DevicePass& p, uint32_t key) {
  const auto* c = static_cast<const CudaPass*>(p.impl);
  if (key >= kMaxRecorded || !c->exec[key]) return false;
  return cudaGraphLaunch(c->exec[key], static_cast<cudaStream_t>(p.stream)) == cudaSuccess;
}

void enter(const DevicePass& p) {
  const int want = static_cast<const CudaPass*>(p.impl)->device;
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != want) cudaSetDevice(want);
  cudaGetLastError();  // what this thread's earlier calls left is not this pass's
}

void alloc_counts(uint64_t* a, uint64_t* f) { *a = g_allocs.load(), *f = g_frees.load(); }

// The bandwidth probe: every block reads its share of a buffer as 16-byte loads; one value per block is
// written only if a sum hits an impossible value, so the reads cannot be dropped.
__global__ void read_k(const float4* p, size_t n, float* sink) {
  float acc = 0.f;
  for (size_t i = thread_index(); i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float4 v = p[i];
    acc += v.x + v.y + v.z + v.w;
  }
  if (acc == 1234567.f) sink[blockIdx.x] = acc;
}

double read_bandwidth(int device, size_t bytes) {
  cudaSetDevice(device);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device);
  bytes = bytes / 16 * 16;
  void* buf = nullptr;
  float* sink = nullptr;
  if (!bytes || cudaMalloc(&buf, bytes) != cudaSuccess) return 0;
  const unsigned blocks = static_cast<unsigned>(prop.multiProcessorCount) * 8;
  if (cudaMalloc(&sink, blocks * sizeof(float)) != cudaSuccess) {
    cudaFree(buf);
    return 0;
  }
  const cudaStream_t hs = helper_stream(device);
  cudaMemsetAsync(buf, 0, bytes, hs);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {  // the first warms up; the best of the rest
    cudaEventRecord(a, hs);
    RILL_LAUNCH(read_k, blocks, 256, 0, hs)(static_cast<const float4*>(buf), bytes / 16, sink);
    cudaEventRecord(b, hs);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    if (rep > 0 && ms > 0) best = best > bytes / (ms * 1e6) ? best : bytes / (ms * 1e6);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaFree(sink);
  cudaFree(buf);
  return cudaGetLastError() == cudaSuccess ? best : 0;
}

size_t recorded_ops(const DevicePass& p, uint32_t key) {
  const auto* c = static_cast<const CudaPass*>(p.impl);
  size_t n = 0;
  if (key < kMaxRecorded && c->graph[key] && cudaGraphGetNodes(c->graph[key], nullptr, &n) != cudaSuccess) n = 0;
  return n;
}

// Synchronous copies for state blobs, clones and resets, on the current device's helper stream (the
// pass's stream is idle between calls: every pass ends in sync).
Status status_of(cudaError_t e) { return e == cudaSuccess ? Status::kOk : Status::kDeviceError; }
Status upload(void* dst, const void* src, size_t bytes) {
  return status_of(copy_sync(current_helper(), dst, src, bytes, cudaMemcpyHostToDevice));
}
Status download(void* dst, const void* src, size_t bytes) {
  return status_of(copy_sync(current_helper(), dst, src, bytes, cudaMemcpyDeviceToHost));
}
Status copy(void* dst, const void* src, size_t bytes) {
  return status_of(copy_sync(current_helper(), dst, src, bytes, cudaMemcpyDeviceToDevice));
}
Status zero(void* dst, size_t bytes) {
  const cudaStream_t s = current_helper();
  if (!s) return Status::kDeviceError;
  if (!bytes) return Status::kOk;
  const cudaError_t e = cudaMemsetAsync(dst, 0, bytes, s), done = cudaStreamSynchronize(s);
  return status_of(e != cudaSuccess ? e : done);
}

size_t work_bytes(const BackendImpl*, size_t, size_t) { return 0; }

const DeviceHooks kHooks = {.probe = probe,
                            .release_weights = release_weights,
                            .open = open,
                            .close = close,
                            .to_device = to_device,
                            .to_host = to_host,
                            .sync = sync,
                            .record = record,
                            .replay = replay,
                            .enter = enter,
                            .alloc_counts = alloc_counts,
                            .read_bandwidth = read_bandwidth,
                            .recorded_ops = recorded_ops};

const BackendImpl kCuda = {.name = RILL_CUDA_BACKEND_NAME,
                           .kind = Backend::kCuda,
                           .ops = &kCudaOps,
                           .impl = nullptr,
                           .place_weights = place_weights,
                           .work_bytes = work_bytes,
                           .upload = upload,
                           .download = download,
                           .copy = copy,
                           .zero = zero,
                           .device = &kHooks};

}  // namespace

const BackendImpl* RILL_CUDA_BACKEND_FN() { return &kCuda; }

}  // namespace rill
