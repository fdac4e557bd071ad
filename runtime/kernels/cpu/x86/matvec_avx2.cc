// AVX2 + FMA + F16C matrix-vector kernels. This file alone is compiled with -mavx2 -mfma -mf16c;
// it is only called after the CPU reported those features.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace rill {
namespace kernels {

namespace {
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

template <typename LoadFn>
inline void matvec_rows4(LoadFn load, const float* x, float* y, size_t rows, size_t cols) {
  const size_t c8 = cols & ~size_t(7);
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (size_t c = 0; c < c8; c += 8) {
      const __m256 xv = _mm256_loadu_ps(x + c);
      a0 = _mm256_fmadd_ps(load(r + 0, c), xv, a0);
      a1 = _mm256_fmadd_ps(load(r + 1, c), xv, a1);
      a2 = _mm256_fmadd_ps(load(r + 2, c), xv, a2);
      a3 = _mm256_fmadd_ps(load(r + 3, c), xv, a3);
    }
    float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
    for (size_t c = c8; c < cols; ++c) {
      for (int i = 0; i < 4; ++i) s[i] += load.scalar(r + i, c) * x[c];
    }
    for (int i = 0; i < 4; ++i) y[r + i] = s[i];
  }
  for (; r < rows; ++r) {
    __m256 a = _mm256_setzero_ps();
    for (size_t c = 0; c < c8; c += 8) a = _mm256_fmadd_ps(load(r, c), _mm256_loadu_ps(x + c), a);
    float s = hsum(a);
    for (size_t c = c8; c < cols; ++c) s += load.scalar(r, c) * x[c];
    y[r] = s;
  }
}

struct LoadF32 {
  const float* W;
  size_t cols;
  __m256 operator()(size_t r, size_t c) const { return _mm256_loadu_ps(W + r * cols + c); }
  float scalar(size_t r, size_t c) const { return W[r * cols + c]; }
};

struct LoadF16 {
  const uint16_t* W;
  size_t cols;
  __m256 operator()(size_t r, size_t c) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W + r * cols + c)));
  }
  float scalar(size_t r, size_t c) const { return _cvtsh_ss(W[r * cols + c]); }
};
}  // namespace

void matvec_f32__avx2(const float* W, const float* x, float* y, size_t rows, size_t cols) {
  matvec_rows4(LoadF32{W, cols}, x, y, rows, cols);
}

void matvec_f16__avx2(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols) {
  matvec_rows4(LoadF16{W, cols}, x, y, rows, cols);
}

}  // namespace kernels
}  // namespace rill
