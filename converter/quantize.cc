// Which tensors are quantized, and how: int8 with one f32 scale per row, int4 in groups with f16 scales.
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "content.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rill {
namespace convert {

namespace {

// Glob with '*' (any run of characters) over the full rill name, e.g. "layers.*.out_proj".
bool glob(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return glob(p + 1, s) || (*s && glob(p, s + 1));
  return *s && *p == *s && glob(p + 1, s + 1);
}

bool any(const std::vector<std::string>& pats, const std::string& name) {
  for (const auto& p : pats)
    if (glob(p.c_str(), name.c_str())) return true;
  return false;
}

int q4_round(float x, float inv) {
  const int q = static_cast<int>(std::lrint(x * inv));
  return q < -8 ? -8 : q > 7 ? 7 : q;
}

// One group's f16 scale, chosen for the least squared error over the 16 levels -8..7. With m the
// value of largest magnitude, the candidates are m / -d and m / d for d = 7, 7.25, ..., 9 (the sign
// decides which end of the asymmetric range m takes: m / -8 is llama.cpp's Q4_0, |m| / 7 a symmetric
// absmax), then the least-squares scale sum(x q) / sum(q q) for the best candidate's levels q. Each is
// judged after rounding to f16, as stored. Kernels multiply by the scale, so its sign is free.
// The candidates' errors are summed side by side (the inner loop runs over candidates and vectorises);
// levels round to nearest even as q4_round does, by the 1.5 * 2^23 trick (exact for |x / s| < 2^22).
// x86 runs it compiled for AVX2 where the CPU has it (10-20 % faster; chosen at run time, not by
// target_clones, whose ifunc resolver runs before ThreadSanitizer's runtime and crashed TSan binaries).
// Without FP contraction (converter/CMakeLists.txt) both give the same bits.
inline __attribute__((always_inline)) uint16_t q4_group_scale_body(const float* x, uint32_t n) {
  float m = 0;
  for (uint32_t c = 0; c < n; ++c)
    if (std::fabs(x[c]) > std::fabs(m)) m = x[c];
  if (m == 0) return 0;
  constexpr int kCand = 24;  // 18 ratios, |m| / 7, the least-squares scale, padding
  uint16_t sh[kCand];
  float s[kCand], inv[kCand], err[kCand];
  auto set = [&](int i, float v) {
    sh[i] = kernels::f32_to_f16(v);
    s[i] = kernels::f16_to_f32(sh[i]);
    inv[i] = s[i] != 0 ? 1.f / s[i] : 0.f;
  };
  set(0, std::fabs(m) / 7.f);
  for (int i = 0; i <= 8; ++i) {
    const float d = 7.f + 0.25f * static_cast<float>(i);
    set(1 + 2 * i, -m / d);
    set(2 + 2 * i, m / d);
  }
  for (int i = 19; i < kCand; ++i) set(i, 0.f);
  constexpr float kRound = 12582912.f;
  for (int i = 0; i < kCand; ++i) err[i] = 0;
  for (uint32_t c = 0; c < n; ++c)
    for (int i = 0; i < kCand; ++i) {
      float q = (x[c] * inv[i] + kRound) - kRound;
      q = q < -8.f ? -8.f : q > 7.f ? 7.f : q;
      const float d = x[c] - q * s[i];
      err[i] += d * d;
    }
  int best = 0;
  for (int i = 1; i < 19; ++i)
    if (err[i] < err[best]) best = i;
  double xq = 0, qq = 0;
  for (uint32_t c = 0; c < n; ++c) {
    const int q = q4_round(x[c], inv[best]);
    xq += static_cast<double>(x[c]) * q, qq += static_cast<double>(q) * q;
  }
  if (qq == 0) return sh[best];
  set(kCand - 1, static_cast<float>(xq / qq));
  float e = 0;
  for (uint32_t c = 0; c < n; ++c) {
    const float d = x[c] - static_cast<float>(q4_round(x[c], inv[kCand - 1])) * s[kCand - 1];
    e += d * d;
  }
  return e < err[best] ? sh[kCand - 1] : sh[best];
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint16_t q4_group_scale_avx2(const float* x, uint32_t n) {
  return q4_group_scale_body(x, n);
}
#endif

uint16_t q4_group_scale(const float* x, uint32_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_runs_avx2()) return q4_group_scale_avx2(x, n);
#endif
  return q4_group_scale_body(x, n);
}

// f16 of n finite values in blocks of 8 by F16C (IEEE round to nearest even, overflow to infinity:
// kernels::f32_to_f16's bits); the squared error and norm summed in double lanes. Returns the index
// it stopped at (the tail is the caller's).
#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) size_t f16_blocks_f16c(const float* v, size_t n, uint16_t* out, double* err2,
                                                             double* ref2) {
  __m256d e = _mm256_setzero_pd(), f = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
    const __m256 back = _mm256_cvtph_ps(h);
    for (int half = 0; half < 2; ++half) {  // the error in double, as the scalar path (x * x overflows f32)
      const __m256d xd = _mm256_cvtps_pd(half ? _mm256_extractf128_ps(x, 1) : _mm256_castps256_ps128(x));
      const __m256d bd = _mm256_cvtps_pd(half ? _mm256_extractf128_ps(back, 1) : _mm256_castps256_ps128(back));
      const __m256d d = _mm256_sub_pd(xd, bd);
      e = _mm256_add_pd(e, _mm256_mul_pd(d, d));
      f = _mm256_add_pd(f, _mm256_mul_pd(xd, xd));
    }
  }
  double el[4], fl[4];
  _mm256_storeu_pd(el, e);
  _mm256_storeu_pd(fl, f);
  for (int j = 0; j < 4; ++j) *err2 += el[j], *ref2 += fl[j];
  return i;
}
#endif

}  // namespace

std::string full_name(const FileTensor& t) {
  return t.layer < 0 ? t.name : "layers." + std::to_string(t.layer) + "." + t.name;
}

void choose_quantization(FileContent* content, const Options& opts) {
  const int bits = opts.dtype == "q8" ? 8 : opts.dtype == "q4" ? 4 : 0;
  if (bits == 0) return;
  for (FileTensor& t : content->tensors) {
    const std::string name = full_name(t);
    const bool forced = any(opts.quantize, name);
    if (t.dclass == spec::DClass::kF32) {  // vectors, norms, SSM parameters: f32 whatever --quantize says
      if (forced) t.note = "f32 only (--quantize does not apply)";
      continue;
    }
    const uint64_t cols = t.shape.at(1);
    const uint32_t group = bits == 8 ? static_cast<uint32_t>(cols) : opts.group;
    if (t.dclass == spec::DClass::kFloat) {
      t.note = "float only (the runtime multiplies it in float)";
    } else if (any(opts.keep_float, name)) {
      t.note = "--keep-float";
    } else if (!forced && t.dclass == spec::DClass::kSensitive) {
      t.note = "sensitive (dynamics)";
    } else if (cols % 32 != 0 || cols % group != 0) {
      t.note = "columns not a multiple of " + std::to_string(bits == 8 ? 32 : group);
    } else {
      t.qbits = bits;
      t.group = group;
      t.rows16 = opts.quant_layout == "rows16";
      t.dtype = bits == 8 ? fb::DType::I8 : fb::DType::I4;
      continue;
    }
    t.dtype = fb::DType::F16;  // stays float: f16 in quantized models
  }
}

// Quantizes rows x cols values; fills data and scale bytes, returns the relative RMS error.
double quantize_matrix(const std::vector<float>& w, uint64_t rows, uint64_t cols, int bits, uint32_t group,
                       bool rows16, std::vector<uint8_t>* data, std::vector<uint8_t>* scales,
                       std::vector<uint8_t>* tmp) {
  std::vector<uint8_t> local;  // the interleave's buffer where the caller keeps none
  std::vector<uint8_t>& d2 = tmp ? *tmp : local;
  double err2 = 0, ref2 = 0;
  if (bits == 8) {
    big_resize(data, rows * cols);
    scales->assign(rows * 4, 0);
    for (uint64_t r = 0; r < rows; ++r) {
      const float* x = w.data() + r * cols;
      int8_t* q = reinterpret_cast<int8_t*>(data->data()) + r * cols;
      // Sixteen lanes side by side so that each loop vectorises (max and the rounding are exact in any
      // order; the error sums are a report, summed per lane).
      constexpr uint64_t kL = 16;
      const uint64_t body = cols / kL * kL;
      float m[kL] = {};
      for (uint64_t c = 0; c < body; c += kL)
        for (uint64_t j = 0; j < kL; ++j) {
          const float a = std::fabs(x[c + j]);
          m[j] = a > m[j] ? a : m[j];
        }
      float amax = 0;
      for (uint64_t j = 0; j < kL; ++j) amax = m[j] > amax ? m[j] : amax;
      for (uint64_t c = body; c < cols; ++c) amax = std::fabs(x[c]) > amax ? std::fabs(x[c]) : amax;
      const float s = amax / 127.f;
      const float inv = s > 0 ? 1.f / s : 0.f;
      // Nearest, ties to even (as lrint), by the 1.5 * 2^23 trick: |x * inv| <= 127. A NaN (kept only
      // under --allow-non-finite) becomes -127, as lrint's out-of-range value clamped did.
      auto level = [&](float v) {
        const float q = (v * inv + 12582912.f) - 12582912.f;
        return static_cast<int8_t>(static_cast<int>(!(q >= -127.f) ? -127.f : q > 127.f ? 127.f : q));
      };
      for (uint64_t c = 0; c < cols; ++c) q[c] = level(x[c]);
      float e[kL] = {}, f[kL] = {};
      for (uint64_t c = 0; c < body; c += kL)
        for (uint64_t j = 0; j < kL; ++j) {
          const float d = x[c + j] - static_cast<float>(q[c + j]) * s;
          e[j] += d * d, f[j] += x[c + j] * x[c + j];
        }
      double er = 0, fr = 0;
      for (uint64_t j = 0; j < kL; ++j) er += e[j], fr += f[j];
      for (uint64_t c = body; c < cols; ++c) {
        const double d = x[c] - q[c] * static_cast<double>(s);
        er += d * d, fr += static_cast<double>(x[c]) * x[c];
      }
      err2 += er, ref2 += fr;
      std::memcpy(scales->data() + r * 4, &s, 4);
    }
    if (rows16) {  // the same values, 16 rows interleaved and offset to unsigned (kernels.h, q8x16_value)
      big_resize(&d2, data->size());
      kernels::q8_to_x16(reinterpret_cast<const int8_t*>(data->data()), rows, cols, d2.data());
      data->swap(d2);
    }
  } else {
    const uint64_t groups = cols / group;
    big_resize(data, rows * cols / 2);
    scales->assign(rows * groups * 2, 0);
    for (uint64_t r = 0; r < rows; ++r) {
      uint8_t* row = data->data() + r * (cols / 2);
      for (uint64_t g = 0; g < groups; ++g) {
        const float* x = w.data() + r * cols + g * group;
        const uint16_t sh = q4_group_scale(x, group);
        const float s = kernels::f16_to_f32(sh);
        const float inv = s != 0 ? 1.f / s : 0.f;
        for (uint32_t c = 0; c < group; ++c) {
          const int q = q4_round(x[c], inv);
          const uint64_t col = g * group + c;
          uint8_t& byte = row[(col / 32) * 16 + (col % 16)];
          byte |= static_cast<uint8_t>((q + 8) << ((col % 32) < 16 ? 0 : 4));
          const double d = x[c] - q * static_cast<double>(s);
          err2 += d * d, ref2 += static_cast<double>(x[c]) * x[c];
        }
        std::memcpy(scales->data() + (r * groups + g) * 2, &sh, 2);
      }
    }
    if (rows16) {  // the same values, 16 rows interleaved (kernels.h, q4x16_value)
      big_resize(&d2, data->size());
      std::vector<uint16_t> s_in(rows * groups), s_out(rows * groups);
      std::memcpy(s_in.data(), scales->data(), scales->size());
      kernels::q4_to_x16(data->data(), s_in.data(), rows, cols, group, d2.data(), s_out.data());
      data->swap(d2);
      std::memcpy(scales->data(), s_out.data(), scales->size());
    }
  }
  return ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
}

double encode_f16(const float* v, size_t n, bool finite, uint16_t* out) {
  double err2 = 0, ref2 = 0;
  size_t i = 0;
#if defined(__x86_64__)
  if (finite && kernels::cpu_runs_avx2()) i = f16_blocks_f16c(v, n, out, &err2, &ref2);  // NaN payloads: scalar
#endif
  for (; i < n; ++i) {
    out[i] = kernels::f32_to_f16(v[i]);
    const double d = static_cast<double>(v[i]) - kernels::f16_to_f32(out[i]);
    err2 += d * d, ref2 += static_cast<double>(v[i]) * v[i];
  }
  return ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
}

}  // namespace convert
}  // namespace rill
