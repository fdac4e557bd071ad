// Scalar reference kernels: the oracle the fast kernels are tested against, and the fallback on CPUs
// without a faster path. Written for clarity, not speed.
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/ref/kernels_ref.h"

namespace rill {
namespace kernels {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FFu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7FFFFFFFu;
  if (absx >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (absx > 0x7F800000u ? 0x200u : 0));
  if (absx >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    // value = m * 2^(e-150); in units of the half subnormal step 2^-24 that is m >> (126 - e)
    const uint32_t e = absx >> 23;
    const uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // in [14, 24]
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;  // round to nearest even
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t r = absx - 0x38000000u;  // rebias exponent 127 -> 15 (<< 23)
  const uint32_t lsb = (r >> 13) & 1u;
  r += 0xFFFu + lsb;  // round to nearest even
  return static_cast<uint16_t>(sign | (r >> 13));
}

float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
float silu(float x) { return x / (1.f + std::exp(-x)); }
float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

void matvec_f32__ref(const float* W, const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const float* w = W + r * cols;
    double acc = 0.0;
    for (size_t c = 0; c < cols; ++c) acc += static_cast<double>(w[c]) * x[c];
    y[r] = static_cast<float>(acc);
  }
}

void matvec_f16__ref(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const uint16_t* w = W + r * cols;
    double acc = 0.0;
    for (size_t c = 0; c < cols; ++c) acc += static_cast<double>(f16_to_f32(w[c])) * x[c];
    y[r] = static_cast<float>(acc);
  }
}

// The reference reads the float activations (a.x): no activation rounding.
void matvec_q8__ref(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  const float* x = a.x;
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* w = W + r * cols;
    double acc = 0.0;
    for (size_t c = 0; c < cols; ++c) acc += static_cast<double>(w[c]) * x[c];
    y[r] = static_cast<float>(acc * scales[r]);
  }
}

void matmul_q8__ref(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                    size_t cols, size_t T) {
  for (size_t t = 0; t < T; ++t) matvec_q8__ref(W, scales, float_act(a.x + t * a.ldx, a.ldx), Y + t * ldy, rows, cols);
}

void matmul_q4__ref(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                    size_t rows, size_t cols, size_t T) {
  for (size_t t = 0; t < T; ++t)
    matvec_q4__ref(W, scales, group, float_act(a.x + t * a.ldx, a.ldx), Y + t * ldy, rows, cols);
}

void matmul_f32__ref(const float* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                     size_t T) {
  for (size_t t = 0; t < T; ++t) matvec_f32__ref(W, X + t * ldx, Y + t * ldy, rows, cols);
}

void matmul_f16__ref(const uint16_t* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                     size_t T) {
  for (size_t t = 0; t < T; ++t) matvec_f16__ref(W, X + t * ldx, Y + t * ldy, rows, cols);
}

void matvec_q4__ref(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y, size_t rows,
                    size_t cols) {
  const float* x = a.x;
  const size_t groups = cols / group;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* w = W + r * (cols / 2);
    double acc = 0.0;
    for (size_t g = 0; g < groups; ++g) {
      double part = 0.0;
      for (size_t c = g * group; c < (g + 1) * group; ++c) part += q4_value(w, c) * static_cast<double>(x[c]);
      acc += part * f16_to_f32(scales[r * groups + g]);
    }
    y[r] = static_cast<float>(acc);
  }
}

void matmul_q4x16__ref(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                       size_t rows, size_t cols, size_t T) {
  const size_t groups = cols / group;
  for (size_t t = 0; t < T; ++t) {
    const float* x = a.x + t * a.ldx;
    for (size_t r = 0; r < rows; ++r) {
      double acc = 0.0;
      for (size_t g = 0; g < groups; ++g) {
        double part = 0.0;
        for (size_t c = g * group; c < (g + 1) * group; ++c)
          part += q4x16_value(W, rows, cols, r, c) * static_cast<double>(x[c]);
        acc += part * f16_to_f32(scales[q4x16_scale_index(rows, groups, r, g)]);
      }
      Y[t * ldy + r] = static_cast<float>(acc);
    }
  }
}

void matmul_q8x16__ref(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                       size_t cols, size_t T) {
  for (size_t t = 0; t < T; ++t) {
    const float* x = a.x + t * a.ldx;
    for (size_t r = 0; r < rows; ++r) {
      double acc = 0.0;
      for (size_t c = 0; c < cols; ++c) acc += q8x16_value(W, rows, cols, r, c) * static_cast<double>(x[c]);
      Y[t * ldy + r] = static_cast<float>(acc * scales[r]);
    }
  }
}

void q8_to_x16(const int8_t* data, size_t rows, size_t cols, uint8_t* out) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      if (x16_tail(rows, r)) out[r * cols + c] = static_cast<uint8_t>(data[r * cols + c]);
      else out[(r / 16) * 16 * cols + (c / 4) * 64 + (r % 16) * 4 + (c % 4)] = static_cast<uint8_t>(data[r * cols + c] + 128);
    }
}

void q4_to_x16(const uint8_t* data, const uint16_t* scales, size_t rows, size_t cols, size_t group, uint8_t* out,
               uint16_t* out_scales) {
  const size_t groups = cols / group;
  for (size_t i = 0; i < rows * cols / 2; ++i) out[i] = 0;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* row = data + r * (cols / 2);
    if (x16_tail(rows, r)) {
      for (size_t i = 0; i < cols / 2; ++i) out[r * (cols / 2) + i] = row[i];
    } else {
      for (size_t c = 0; c < cols; ++c) {
        uint8_t& byte = out[(r / 16) * 8 * cols + (c / 8) * 64 + (r % 16) * 4 + (c % 4)];
        byte = static_cast<uint8_t>(byte | ((q4_value(row, c) + 8) << ((c % 8) < 4 ? 0 : 4)));
      }
    }
    for (size_t g = 0; g < groups; ++g) out_scales[q4x16_scale_index(rows, groups, r, g)] = scales[r * groups + g];
  }
}

void rmsnorm(const float* x, const float* w, float* out, size_t n, float eps) {
  float ss = 0.f;
  for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void conv1d_step_silu(float* hist, const float* w, const float* b, const float* x, float* out, size_t E,
                      size_t K, bool silu) {
  // out = b + sum_k w[k] * window[k], window = hist[0..K-2], x
  for (size_t c = 0; c < E; ++c) out[c] = (b ? b[c] : 0.f) + w[(K - 1) * E + c] * x[c];
  for (size_t k = 0; k + 1 < K; ++k) {
    const float* wk = w + k * E;
    const float* hk = hist + k * E;
    for (size_t c = 0; c < E; ++c) out[c] += wk[c] * hk[c];
  }
  if (silu)
    for (size_t c = 0; c < E; ++c) out[c] = out[c] / (1.f + std::exp(-out[c]));
  if (K >= 2) {
    std::memmove(hist, hist + E, (K - 2) * E * sizeof(float));
    std::memcpy(hist + (K - 2) * E, x, E * sizeof(float));
  }
}

void mamba1_scan__ref(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                      const float* D, const float* z, float* y, size_t E, size_t N, size_t c0, size_t c1) {
  for (size_t c = c0; c < c1; ++c) y[c] = D[c] * x[c];
  for (size_t n = 0; n < N; ++n) {
    float* sn = s + n * E;
    const float* An = A + n * E;
    for (size_t c = c0; c < c1; ++c) {
      const float v = std::exp(dt[c] * An[c]) * sn[c] + dt[c] * B[n] * x[c];
      sn[c] = v;
      y[c] += v * C[n];
    }
  }
  for (size_t c = c0; c < c1; ++c) y[c] *= silu(z[c]);
}

void mamba2_scan_step(float* S, const float* x, const float* B, const float* C, const float* dt, const float* A,
                      const float* D, float* y, size_t H, size_t P, size_t N, size_t G, size_t h0, size_t h1) {
  const size_t heads_per_group = H / G;
  for (size_t h = h0; h < h1; ++h) {
    const float a = std::exp(dt[h] * A[h]);
    const float* Bg = B + (h / heads_per_group) * N;
    const float* Cg = C + (h / heads_per_group) * N;
    for (size_t p = 0; p < P; ++p) {
      const size_t c = h * P + p;
      float* s = S + c * N;
      const float dtx = dt[h] * x[c];
      float acc = 0.f;
      for (size_t n = 0; n < N; ++n) {
        s[n] = a * s[n] + dtx * Bg[n];
        acc += s[n] * Cg[n];
      }
      y[c] = acc + D[c] * x[c];
    }
  }
}

void gated_rmsnorm(float* y, const float* z, const float* w, size_t E, size_t G, float eps) {
  const size_t gs = E / G;
  for (size_t c = 0; c < E; ++c) y[c] *= silu(z[c]);
  for (size_t g = 0; g < G; ++g) {
    float* yg = y + g * gs;
    float ss = 0.f;
    for (size_t i = 0; i < gs; ++i) ss += yg[i] * yg[i];
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(gs) + eps);
    for (size_t i = 0; i < gs; ++i) yg[i] = yg[i] * inv * w[g * gs + i];
  }
}

void layernorm(const float* x, const float* w, const float* b, float* out, size_t n, float eps) {
  float mu = 0.f;
  for (size_t i = 0; i < n; ++i) mu += x[i];
  mu /= static_cast<float>(n);
  float var = 0.f;
  for (size_t i = 0; i < n; ++i) var += (x[i] - mu) * (x[i] - mu);
  const float inv = 1.f / std::sqrt(var / static_cast<float>(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = (x[i] - mu) * inv * w[i] + b[i];
}

void wkv_step(float* S, const WkvIo& io, size_t, size_t K, size_t V, bool read_first, size_t h0, size_t h1) {
  const float *r = io.r, *w = io.w, *k = io.k, *v = io.v, *a = io.a, *b = io.b;
  for (size_t h = h0; h < h1; ++h) {
    const size_t o = h * K;
    float* Sh = S + h * V * K;
    for (size_t i = 0; i < V; ++i) {
      float* row = Sh + i * K;  // S[i][:], over keys j
      float sa = 0.f;
      if (a)
        for (size_t j = 0; j < K; ++j) sa += row[j] * a[o + j];
      float acc = 0.f;
      for (size_t j = 0; j < K; ++j) {
        if (read_first) acc += row[j] * r[o + j];
        float s = row[j] * w[o + j];
        if (a) s += sa * b[o + j];
        row[j] = s + v[h * V + i] * k[o + j];
        if (!read_first) acc += row[j] * r[o + j];
      }
      io.y[h * V + i] = acc;
    }
  }
}

// The reference takes no chunked form: the workspace is ignored.
void mamba2_ssd__ref(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt,
                     const float* A, const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G,
                     float*, size_t h0, size_t h1) {
  for (size_t t = 0; t < T; ++t)
    mamba2_scan_step(S, x + t * ldx, B + t * ldx, C + t * ldx, dt + t * H, A, D, y + t * H * P, H, P, N, G, h0, h1);
}

// The reference takes no chunked form: the workspace is ignored.
void wkv_scan__ref(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t V, bool read_first, float*,
                   size_t h0, size_t h1) {
  for (size_t t = 0; t < T; ++t) wkv_step(S, wkv_at(io, t, H * K, H * V), H, K, V, read_first, h0, h1);
}

void act__ref(Act kind, float* y, size_t n) {
  switch (kind) {
    case Act::kTanh:
      for (size_t i = 0; i < n; ++i) y[i] = std::tanh(y[i]);
      break;
    case Act::kSigmoid:
      for (size_t i = 0; i < n; ++i) y[i] = sigmoid(y[i]);
      break;
    case Act::kReluSq:
      for (size_t i = 0; i < n; ++i) y[i] = y[i] > 0.f ? y[i] * y[i] : 0.f;
      break;
    case Act::kRwkv7Decay:  // -exp(-1/2) = -0.6065306597126334
      for (size_t i = 0; i < n; ++i) y[i] = std::exp(-0.6065306597126334f * sigmoid(y[i]));
      break;
    case Act::kGeluErf:  // 1 + erf(z) as erfc(-z): no cancellation in the negative tail; 1/sqrt(2) = 0.7071...
      for (size_t i = 0; i < n; ++i) y[i] = 0.5f * y[i] * std::erfc(-y[i] * 0.7071067811865476f);
      break;
    case Act::kGeluTanh:  // sqrt(2/pi) = 0.7978845608028654
      for (size_t i = 0; i < n; ++i)
        y[i] = 0.5f * y[i] * (1.f + std::tanh(0.7978845608028654f * (y[i] + 0.044715f * y[i] * y[i] * y[i])));
      break;
    case Act::kSilu:
      for (size_t i = 0; i < n; ++i) y[i] = silu(y[i]);
      break;
    case Act::kSoftplus:
      for (size_t i = 0; i < n; ++i) y[i] = softplus(y[i]);
      break;
    case Act::kExpNegExp:
      for (size_t i = 0; i < n; ++i) y[i] = std::exp(-std::exp(y[i]));
      break;
  }
}

void exp__ref(float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = std::exp(y[i]);
}

void conv_silu__ref(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                    size_t C, size_t K, bool silu, size_t c0, size_t c1) {
  // conv1d_step_silu's arithmetic, channel by channel over the range.
  for (size_t t = 0; t < T; ++t) {
    const float* x = X + t * ldx;
    for (size_t c = c0; c < c1; ++c) {
      float acc = (b ? b[c] : 0.f) + w[(K - 1) * C + c] * x[c];
      for (size_t k = 0; k + 1 < K; ++k) acc += w[k * C + c] * hist[k * C + c];
      Y[t * C + c] = silu ? acc / (1.f + std::exp(-acc)) : acc;
      for (size_t k = 0; k + 2 < K; ++k) hist[k * C + c] = hist[(k + 1) * C + c];
      if (K >= 2) hist[(K - 2) * C + c] = x[c];
    }
  }
}

void gated_rmsnorm__ref(float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G,
                        float eps) {
  for (size_t i = 0; i < n; ++i) gated_rmsnorm(Y + i * E, Z + i * ldz, w, E, G, eps);
}

void layernorm__ref(const float* X, const float* w, const float* b, float* Y, size_t n, size_t d, float eps) {
  for (size_t i = 0; i < n; ++i) layernorm(X + i * d, w, b, Y + i * d, d, eps);
}

void s4d_step__ref(float* s, const float* A, const float* C, const float* D, const float* u, float* y, size_t H,
                   size_t M) {
  for (size_t h = 0; h < H; ++h) y[h] = 0.f;
  for (size_t m = 0; m < M; ++m) {
    float* __restrict sr = s + m * 2 * H;
    float* __restrict si = sr + H;
    const float* ar = A + m * 2 * H;
    const float* ai = ar + H;
    const float* cr = C + m * 2 * H;
    const float* ci = cr + H;
    for (size_t h = 0; h < H; ++h) {  // channels are independent: vectorises across h
      const float r = ar[h] * sr[h] - ai[h] * si[h] + u[h];
      const float i = ar[h] * si[h] + ai[h] * sr[h];
      sr[h] = r;
      si[h] = i;
      y[h] += cr[h] * r - ci[h] * i;
    }
  }
  for (size_t h = 0; h < H; ++h) y[h] = 2.f * y[h] + D[h] * u[h];
}

void group_norm(float* y, const float* w, const float* b, size_t H, size_t N, float eps) {
  for (size_t h = 0; h < H; ++h) layernorm(y + h * N, w + h * N, b + h * N, y + h * N, N, eps);
}

// Scores, then a softmax per head (max subtracted), then the weighted sum of the values.
void attend_group__ref(const void* K, const void* V, bool f16, size_t stride, size_t n, const float* Q, size_t G,
                       size_t D, float scale, float* scores, size_t ldsc, float* Y) {
  auto at = [&](const void* base, size_t s, size_t j) {
    return f16 ? f16_to_f32(static_cast<const uint16_t*>(base)[s * stride + j])
               : static_cast<const float*>(base)[s * stride + j];
  };
  for (size_t h = 0; h < G; ++h) {
    float* sc = scores + h * ldsc;
    float mx = -INFINITY;
    for (size_t s = 0; s < n; ++s) {
      float dot = 0.f;
      for (size_t j = 0; j < D; ++j) dot += Q[h * D + j] * at(K, s, j);
      sc[s] = dot * scale;
      mx = sc[s] > mx ? sc[s] : mx;
    }
    float sum = 0.f;
    for (size_t s = 0; s < n; ++s) sum += (sc[s] = std::exp(sc[s] - mx));
    const float inv = 1.f / sum;
    for (size_t j = 0; j < D; ++j) Y[h * D + j] = 0.f;
    for (size_t s = 0; s < n; ++s) {
      const float p = sc[s] * inv;
      for (size_t j = 0; j < D; ++j) Y[h * D + j] += p * at(V, s, j);
    }
  }
}

}  // namespace kernels
}  // namespace rill
