// Quantized products with int8 activations on the dot-product instructions (SDOT, ARMv8.2 dotprod),
// included inside an anonymous namespace by kernels_neon_dotprod.cc and kernels_neon_i8mm.cc, whose
// translation units are compiled for those extensions (runtime/CMakeLists.txt); the table that holds
// them is chosen only where the CPU reports them (dispatch.cc).
//
// Activations are quantized once per product (prepare_act, into the caller's workspace) per block of 32:
// x[b*32 + j] ~ sx[b] q[b*32 + j], |q| <= 127, rounded to nearest even, as on x86. Every block's integer
// sum is exact, so the products differ from the reference only by the activations' rounding:
//   q8, plain rows:  y[r] = sw[r] sum_b sx[b] dot(w[r, b], q[b])
//   q4, plain rows:  y[r] = sum_b (sx[b] sw[r, g(b)]) dot(u[r, b] - 8, q[b])    (nibbles made signed)
//   16-row layouts:  one SDOT per 4 rows x 4 columns, the activation's 4 bytes taken from a lane
//                    (vdotq_laneq_s32); int8 weights stored as w + 128 are made signed by one EOR; int4
//                    nibbles go in as stored (q + 8) and each block's sum loses 8 sum(q) (QAct::sum).
// Per block and token, the int32 sum d is added as acc = fma(float(d), scale, acc), in block order: a
// token's result does not depend on the other tokens of a tile, so T tokens give the bits of T single
// tokens; the i8mm kernels compute the same integers d with USDOT and USMMLA.
// Needs: <arm_neon.h>, kernels/kernels.h, kernels/cpu/token_tiles.h.

// Quantizes n (a multiple of 32) floats into blocks of 32: q, per-block scale, per-block sum of q.
inline void quantize_blocks(const float* x, size_t n, int8_t* q, float* sx, int32_t* sum) {
  for (size_t b = 0; b < n / 32; ++b) {
    const float* p = x + b * 32;
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.f);
    for (int k = 0; k < 8; ++k) {
      v[k] = vld1q_f32(p + 4 * k);
      m = vmaxq_f32(m, vabsq_f32(v[k]));
    }
    const float s = vmaxvq_f32(m) / 127.f;
    const float32x4_t inv = vdupq_n_f32(s > 0 ? 1.f / s : 0.f);  // NaN or 0: every q is 0
    int16x8_t h[4];
    for (int k = 0; k < 4; ++k)
      h[k] = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(v[2 * k], inv))),
                          vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(v[2 * k + 1], inv))));
    const int8x16_t q0 = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
    const int8x16_t q1 = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
    vst1q_s8(q + b * 32, q0);
    vst1q_s8(q + b * 32 + 16, q1);
    sum[b] = vaddlvq_s8(q0) + vaddlvq_s8(q1);
    sx[b] = s;
  }
}

// QAct of T rows: quantized blocks and their sums. No int4 corrections (corr is null): the plain-row
// kernels make the nibbles signed, and the 16-row ones take 8 sum(q) off each block from the sums.
inline void prepare_act_dot(const float* X, size_t ldx, size_t T, size_t cols, size_t /*group*/,
                            unsigned char* work, QAct* a, size_t t0, size_t t1) {
  const ActLayout L = act_layout(T, cols);
  const size_t lb = L.ldq / 32;
  int8_t* q = reinterpret_cast<int8_t*>(work);
  float* s = reinterpret_cast<float*>(work + L.s);
  int32_t* sum = reinterpret_cast<int32_t*>(work + L.sum);
  for (size_t t = t0; t < t1; ++t) quantize_blocks(X + t * ldx, cols, q + t * L.ldq, s + t * lb, sum + t * lb);
  *a = QAct{X, ldx, q, s, nullptr, L.ldq, 0, sum};
}

// ---- plain row layouts, tiles of NT tokens (each weight block loaded once per tile)

// Two accumulators per token (even and odd blocks), so consecutive FMAs do not wait on each other.
template <size_t NT>
void rows_q8_dot(const int8_t* W, const float* scales, const QAct& a, size_t t0, float* Y, size_t ldy, size_t rows,
                 size_t cols) {
  const size_t nb = cols / 32, lds = a.ldq / 32;
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* w = W + r * cols;
    float32x4_t acc[2][NT];
    for (size_t t = 0; t < NT; ++t) acc[0][t] = acc[1][t] = vdupq_n_f32(0.f);
    for (size_t b = 0; b < nb; ++b) {
      const int8x16_t w0 = vld1q_s8(w + b * 32), w1 = vld1q_s8(w + b * 32 + 16);
      for (size_t t = 0; t < NT; ++t) {
        const int8_t* q = a.q + (t0 + t) * a.ldq + b * 32;
        const int32x4_t d = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(q)), w1, vld1q_s8(q + 16));
        acc[b & 1][t] = vfmaq_n_f32(acc[b & 1][t], vcvtq_f32_s32(d), a.s[(t0 + t) * lds + b]);
      }
    }
    for (size_t t = 0; t < NT; ++t) Y[t * ldy + r] = vaddvq_f32(vaddq_f32(acc[0][t], acc[1][t])) * scales[r];
  }
}

// A 32-block of a plain int4 row (element j in byte j % 16, low nibble for j < 16) as signed u - 8.
inline void q4_block(const uint8_t* p, int8x16_t* lo, int8x16_t* hi) {
  const uint8x16_t packed = vld1q_u8(p);
  *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
  *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), vdupq_n_s8(8));
}

template <size_t NT>
void rows_q4_dot(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, size_t t0, float* Y,
                 size_t ldy, size_t rows, size_t cols) {
  const size_t nb = cols / 32, bpg = group / 32, groups = cols / group, lds = a.ldq / 32;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* w = W + r * (cols / 2);
    float32x4_t acc[2][NT];
    for (size_t t = 0; t < NT; ++t) acc[0][t] = acc[1][t] = vdupq_n_f32(0.f);
    for (size_t b = 0; b < nb; ++b) {
      int8x16_t lo, hi;
      q4_block(w + b * 16, &lo, &hi);
      const float sw = vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(scales[r * groups + b / bpg]))), 0);
      for (size_t t = 0; t < NT; ++t) {
        const int8_t* q = a.q + (t0 + t) * a.ldq + b * 32;
        const int32x4_t d = vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(q)), hi, vld1q_s8(q + 16));
        acc[b & 1][t] = vfmaq_n_f32(acc[b & 1][t], vcvtq_f32_s32(d), a.s[(t0 + t) * lds + b] * sw);
      }
    }
    for (size_t t = 0; t < NT; ++t) Y[t * ldy + r] = vaddvq_f32(vaddq_f32(acc[0][t], acc[1][t]));
  }
}

constexpr size_t kDotTile = 4;

inline void matmul_q8_dot(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                          size_t cols, size_t T) {
  token_tiles<kDotTile>(T, [&](auto nt, size_t t) {
    rows_q8_dot<decltype(nt)::value>(W, scales, a, t, Y + t * ldy, ldy, rows, cols);
  });
}
inline void matmul_q4_dot(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                          size_t ldy, size_t rows, size_t cols, size_t T) {
  token_tiles<kDotTile>(T, [&](auto nt, size_t t) {
    rows_q4_dot<decltype(nt)::value>(W, scales, group, a, t, Y + t * ldy, ldy, rows, cols);
  });
}

// ---- the 16-row layouts (kernels.h, q8x16_value / q4x16_value): 16 rows as 4 vectors of 4 rows

// The end of a 64-byte step: loads of later steps stay after it, so the compiler does not hoist every
// step's weights at once and spill the accumulators (about a fifth fewer instructions per block).
inline void step_end() { asm volatile("" ::: "memory"); }

// acc += float(d) * scale, the per-block step every 16-row kernel (SDOT or SMMLA) ends a block with.
inline float32x4_t add_block(float32x4_t acc, int32x4_t d, float32x4_t scale) {
  return vfmaq_f32(acc, vcvtq_f32_s32(d), scale);
}

// d[t][h] += the 4 rows of w times token t's 4 activation bytes in lane L of x[t].
template <int L, size_t NT>
inline void sdot_lane(int32x4_t (*d)[4], int h, int8x16_t w, const int8x16_t* x) {
  for (size_t t = 0; t < NT; ++t) d[t][h] = vdotq_laneq_s32(d[t][h], w, x[t], L);
}

// One step of 4 columns of 16 rows (64 bytes, one 4-register load): the int8 weights made signed, each
// 4 rows' SDOT with the activation bytes in lane L.
template <int L, size_t NT>
inline void x16_q8_step(int32x4_t (*d)[4], const uint8_t* w64, const int8x16_t* x, uint8x16_t bias) {
  const uint8x16x4_t w = vld1q_u8_x4(w64);
  sdot_lane<L, NT>(d, 0, vreinterpretq_s8_u8(veorq_u8(w.val[0], bias)), x);
  sdot_lane<L, NT>(d, 1, vreinterpretq_s8_u8(veorq_u8(w.val[1], bias)), x);
  sdot_lane<L, NT>(d, 2, vreinterpretq_s8_u8(veorq_u8(w.val[2], bias)), x);
  sdot_lane<L, NT>(d, 3, vreinterpretq_s8_u8(veorq_u8(w.val[3], bias)), x);
  step_end();
}

// int8, NT tokens (t0..) over 16 rows: per 32-column block, 8 steps of 4 columns, one SDOT each per 4
// rows and token.
template <size_t NT>
inline void x16_q8_dot(const uint8_t* W, const float* S, size_t cols, const QAct& a, size_t t0, float* Y,
                       size_t ldy) {
  const size_t lds = a.ldq / 32;
  const uint8x16_t bias = vdupq_n_u8(0x80);
  float32x4_t acc[NT][4];
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) acc[t][h] = vdupq_n_f32(0.f);
  for (size_t b = 0; b < cols / 32; ++b) {
    int32x4_t d[NT][4];
    for (size_t t = 0; t < NT; ++t)
      for (int h = 0; h < 4; ++h) d[t][h] = vdupq_n_s32(0);
    for (size_t k = 0; k < 8; k += 4) {  // 16 columns: one activation load per token
      int8x16_t x[NT];
      for (size_t t = 0; t < NT; ++t) x[t] = vld1q_s8(a.q + (t0 + t) * a.ldq + b * 32 + 4 * k);
      const uint8_t* wk = W + (b * 8 + k) * 64;
      x16_q8_step<0, NT>(d, wk, x, bias);
      x16_q8_step<1, NT>(d, wk + 64, x, bias);
      x16_q8_step<2, NT>(d, wk + 128, x, bias);
      x16_q8_step<3, NT>(d, wk + 192, x, bias);
    }
    for (size_t t = 0; t < NT; ++t) {
      const float32x4_t sx = vdupq_n_f32(a.s[(t0 + t) * lds + b]);
      for (int h = 0; h < 4; ++h) acc[t][h] = add_block(acc[t][h], d[t][h], sx);
    }
  }
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) vst1q_f32(Y + t * ldy + 4 * h, vmulq_f32(acc[t][h], vld1q_f32(S + 4 * h)));
}

// One step of 8 columns of 16 rows (64 bytes, one 4-register load): in each 16 bytes (4 rows) the low
// nibbles are columns 8k..8k+3 (activation lane L), the high ones 8k+4..8k+7 (lane L + 1). The nibbles
// go in as stored (q + 8, 0..15); the block's sums lose 8 sum(q) at its end.
template <int L, size_t NT>
inline void x16_q4_step(int32x4_t (*d)[4], const uint8_t* w64, const int8x16_t* x) {
  const uint8x16x4_t w = vld1q_u8_x4(w64);
  for (int h = 0; h < 4; ++h) {
    sdot_lane<L, NT>(d, h, vreinterpretq_s8_u8(vandq_u8(w.val[h], vdupq_n_u8(0x0F))), x);
    sdot_lane<L + 1, NT>(d, h, vreinterpretq_s8_u8(vshrq_n_u8(w.val[h], 4)), x);
  }
  step_end();
}

// The scale of 4 rows for a block of token t: sx[b] times the rows' f16 group scales.
inline float32x4_t x16_q4_scales(const uint16_t* S, size_t g, int h) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(S + g * 16 + 4 * h)));
}

// int4, NT tokens over 16 rows: per 32-column block 4 steps of 8 columns, two SDOTs each per 4 rows and
// token (low nibbles on one activation lane, high on the next).
template <size_t NT>
inline void x16_q4_dot(const uint8_t* W, const uint16_t* S, size_t cols, size_t group, const QAct& a, size_t t0,
                       float* Y, size_t ldy) {
  const size_t lds = a.ldq / 32, bpg = group / 32;
  float32x4_t acc[NT][4];
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) acc[t][h] = vdupq_n_f32(0.f);
  for (size_t b = 0; b < cols / 32; ++b) {
    int32x4_t d[NT][4];
    for (size_t t = 0; t < NT; ++t)
      for (int h = 0; h < 4; ++h) d[t][h] = vdupq_n_s32(0);
    for (size_t k = 0; k < 4; k += 2) {  // 16 columns: one activation load per token
      int8x16_t x[NT];
      for (size_t t = 0; t < NT; ++t) x[t] = vld1q_s8(a.q + (t0 + t) * a.ldq + b * 32 + 8 * k);
      const uint8_t* wk = W + (b * 4 + k) * 64;
      x16_q4_step<0, NT>(d, wk, x);
      x16_q4_step<2, NT>(d, wk + 64, x);
    }
    for (int h = 0; h < 4; ++h) {
      const float32x4_t sw = x16_q4_scales(S, b / bpg, h);
      for (size_t t = 0; t < NT; ++t)
        acc[t][h] = add_block(acc[t][h], vsubq_s32(d[t][h], vdupq_n_s32(8 * a.sum[(t0 + t) * lds + b])),
                              vmulq_n_f32(sw, a.s[(t0 + t) * lds + b]));
    }
  }
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) vst1q_f32(Y + t * ldy + 4 * h, acc[t][h]);
}

// Tiles of 2 tokens: 8 float and 8 int32 accumulators, the weights and activations fit the 32 registers.
constexpr size_t kX16Tile = 2;

inline void matmul_q8x16_dot(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy,
                             size_t rows, size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16)
    token_tiles<kX16Tile>(T, [&](auto nt, size_t t) {
      x16_q8_dot<decltype(nt)::value>(W + r * cols, scales + r, cols, a, t, Y + t * ldy + r, ldy);
    });
}
inline void matmul_q4x16_dot(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                             size_t ldy, size_t rows, size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16)
    token_tiles<kX16Tile>(T, [&](auto nt, size_t t) {
      x16_q4_dot<decltype(nt)::value>(W + r * (cols / 2), scales + r * (cols / group), cols, group, a, t,
                                      Y + t * ldy + r, ldy);
    });
}
