// Picks the kernel table once from the CPU's features, and the dtype dispatch for weight views.
#include <cstring>
#if defined(RILL_HAVE_AVX2)
#include <cpuid.h>
#endif
#include <cstddef>
#include <cstdint>

#include "core/model_impl.h"
#include "kernels/kernels.h"
#include "kernels/cpu/isa_kernels.h"
#include "kernels/ref/kernels_ref.h"
#if defined(RILL_HAVE_PTHREADPOOL)
#include <pthreadpool.h>
#endif

namespace rill {
namespace kernels {

namespace {
const Table kRef = {"ref", matvec_f32__ref, matvec_f16__ref, mamba1_scan__ref, matvec_q8__ref, matvec_q4__ref,
                     matmul_q8__ref,   matmul_q4__ref,   matmul_f32__ref, matmul_f16__ref};
#if defined(RILL_HAVE_AVX2)
const Table kAvx2 = {"avx2", matvec_f32__avx2, matvec_f16__avx2, mamba1_scan__avx2, matvec_q8__avx2, matvec_q4__avx2,
                      matmul_q8__avx2,  matmul_q4__avx2,  matmul_f32__avx2, matmul_f16__avx2};
bool cpu_has_avx2() {
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));  // CPUID.1:ECX.F16C
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}
#endif

#if defined(RILL_HAVE_AVX512)
// The float kernels stay AVX2 (bandwidth-bound); the quantized dot products use VNNI.
const Table kAvx512 = {"avx512vnni", matvec_f32__avx2, matvec_f16__avx2, mamba1_scan__avx2, matvec_q8__avx512vnni,
                       matvec_q4__avx512vnni, matmul_q8__avx512vnni, matmul_q4__avx512vnni, matmul_f32__avx2,
                       matmul_f16__avx2};
bool cpu_has_avx512vnni() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}
#endif

#if defined(RILL_HAVE_NEON)
// NEON is part of every aarch64 CPU: no feature check.
const Table kNeon = {"neon", matvec_f32__neon, matvec_f16__neon, mamba1_scan__ref, matvec_q8__neon, matvec_q4__neon,
                     matmul_q8__neon, matmul_q4__neon, matmul_f32__neon, matmul_f16__neon};
#endif

const Table* choose() {
#if defined(RILL_HAVE_NEON)
  return &kNeon;
#endif
#if defined(RILL_HAVE_AVX512)
  if (cpu_has_avx512vnni()) return &kAvx512;
#endif
#if defined(RILL_HAVE_AVX2)
  if (cpu_has_avx2()) return &kAvx2;
#endif
  return &kRef;
}
}  // namespace

const Table& active() {
  static const Table* t = choose();  // first call happens in Model::init, not in step
  return *t;
}

size_t available(const Table** out, size_t max) {
  size_t n = 0;
  if (n < max) out[n++] = &kRef;
#if defined(RILL_HAVE_NEON)
  if (n < max) out[n++] = &kNeon;
#endif
#if defined(RILL_HAVE_AVX2)
  if (cpu_has_avx2() && n < max) out[n++] = &kAvx2;
#endif
#if defined(RILL_HAVE_AVX512)
  if (cpu_has_avx512vnni() && n < max) out[n++] = &kAvx512;
#endif
  return n;
}

namespace {
// Rows [r0, r0 + n) of y = W x.
void matvec_rows(const TensorView& W, const float* x, float* y, size_t r0, size_t n) {
  const Table& t = active();
  const size_t cols = W.cols();
  switch (W.dtype) {
    case DType::kF32:
      t.matvec_f32(static_cast<const float*>(W.data) + r0 * cols, x, y + r0, n, cols);
      break;
    case DType::kF16:
      t.matvec_f16(static_cast<const uint16_t*>(W.data) + r0 * cols, x, y + r0, n, cols);
      break;
    case DType::kI8:
      t.matvec_q8(static_cast<const int8_t*>(W.data) + r0 * cols, static_cast<const float*>(W.scales) + r0, x, y + r0,
                  n, cols);
      break;
    case DType::kI4:
      t.matvec_q4(static_cast<const uint8_t*>(W.data) + r0 * (cols / 2),
                  static_cast<const uint16_t*>(W.scales) + r0 * (cols / W.group), W.group, x, y + r0, n, cols);
      break;
    default:
      break;  // unreachable: init refuses other dtypes for matrices
  }
}

// Rows [r0, r0 + n) of Y[t] = W X[t] for T tokens: one call of the dtype's batched kernel.
void matmul_rows(const TensorView& W, const float* X, size_t ldx, float* Y, size_t ldy, size_t T, size_t r0, size_t n) {
  if (T == 1) return matvec_rows(W, X, Y, r0, n);
  const Table& t = active();
  const size_t cols = W.cols();
  switch (W.dtype) {
    case DType::kF32:
      t.matmul_f32(static_cast<const float*>(W.data) + r0 * cols, X, Y + r0, n, cols, T, ldx, ldy);
      break;
    case DType::kF16:
      t.matmul_f16(static_cast<const uint16_t*>(W.data) + r0 * cols, X, Y + r0, n, cols, T, ldx, ldy);
      break;
    case DType::kI8:
      t.matmul_q8(static_cast<const int8_t*>(W.data) + r0 * cols, static_cast<const float*>(W.scales) + r0, X, Y + r0,
                  n, cols, T, ldx, ldy);
      break;
    case DType::kI4:
      t.matmul_q4(static_cast<const uint8_t*>(W.data) + r0 * (cols / 2),
                  static_cast<const uint16_t*>(W.scales) + r0 * (cols / W.group), W.group, X, Y + r0, n, cols, T, ldx,
                  ldy);
      break;
    default:
      break;
  }
}

#if defined(RILL_HAVE_PTHREADPOOL)
struct MatmulTask {
  const TensorView* W;
  const float* X;
  size_t ldx;
  float* Y;
  size_t ldy, T;
};

void matmul_task(void* ctx, size_t start, size_t count) {
  const MatmulTask* t = static_cast<const MatmulTask*>(ctx);
  matmul_rows(*t->W, t->X, t->ldx, t->Y, t->ldy, t->T, start, count);
}
#endif
}  // namespace

void matmul(const TensorView& W, const float* X, size_t ldx, float* Y, size_t ldy, size_t T, void* pool) {
  const size_t rows = W.rows();
#if defined(RILL_HAVE_PTHREADPOOL)
  if (pool) {
    const size_t threads = pthreadpool_get_threads_count(static_cast<pthreadpool_t>(pool));
    if (threads > 1 && rows >= 64) {
      // One contiguous slice of rows per thread: each streams its part of W sequentially.
      const size_t tile = (rows + threads - 1) / threads;
      MatmulTask task{&W, X, ldx, Y, ldy, T};
      pthreadpool_parallelize_1d_tile_1d(static_cast<pthreadpool_t>(pool), matmul_task, &task, rows, tile, 0);
      return;
    }
  }
#else
  (void)pool;
#endif
  matmul_rows(W, X, ldx, Y, ldy, T, 0, rows);
}

void matvec(const TensorView& W, const float* x, float* y, void* pool) { matmul(W, x, 0, y, 0, 1, pool); }

void mamba1_scan_step(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                      const float* D, const float* z, float* y, size_t E, size_t N) {
  active().mamba1_scan(s, A, dt, x, B, C, D, z, y, E, N);
}

void embedding_row(const TensorView& W, uint64_t r, float* out) {
  const uint64_t d = W.cols();
  if (W.dtype == DType::kF32) {
    std::memcpy(out, static_cast<const float*>(W.data) + r * d, d * sizeof(float));
  } else if (W.dtype == DType::kF16) {
    const uint16_t* p = static_cast<const uint16_t*>(W.data) + r * d;
    for (uint64_t i = 0; i < d; ++i) out[i] = f16_to_f32(p[i]);
  } else if (W.dtype == DType::kI8) {
    const int8_t* p = static_cast<const int8_t*>(W.data) + r * d;
    const float s = static_cast<const float*>(W.scales)[r];
    for (uint64_t i = 0; i < d; ++i) out[i] = p[i] * s;
  } else {
    const uint8_t* p = static_cast<const uint8_t*>(W.data) + r * (d / 2);
    const uint16_t* s = static_cast<const uint16_t*>(W.scales) + r * (d / W.group);
    for (uint64_t i = 0; i < d; ++i) out[i] = static_cast<float>(q4_value(p, i)) * f16_to_f32(s[i / W.group]);
  }
}

}  // namespace kernels
}  // namespace rill
