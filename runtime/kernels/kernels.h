// CPU kernels of rill: what the CPU backend's ops (kernels/cpu/backend_cpu.cc) call, one row or one
// slice of rows at a time.
//
// Every dispatched kernel has a scalar reference (`*__ref`, kernels/ref/) that the fast versions are
// tested against. The fast versions (kernels/cpu/<isa>/) are grouped in one Table per ISA; the CPU
// backend holds one table, chosen once from the CPU's features. Kernels never allocate, never fail
// (shapes were proven at init) and use no stack scratch beyond a few registers' worth: workspace comes
// from the caller.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/act.h"
#include "core/required.h"

namespace rill {
namespace kernels {

// Activations of T tokens as the quantized kernels read them: the floats (row t at x + t * ldx) and,
// for tables with int8-activation kernels (Table::prepare_act non-null), their int8 form: each row
// quantized per 32-element block, x[b*32 + j] ~ s[b] q[b*32 + j] with |q| <= 127, and for int4
// weights the table's own corrections for the +8 of the stored nibbles where its kernels read them
// (x86: corr[g] = 8 sum_{b in group g} s[b] sum_j q[b*32 + j], or per 4 columns on AVX-512; null on
// Arm, whose kernels use the block sums). Row t's q at q + t * ldq, s at s + t * (ldq / 32), corr at
// corr + t * ldc.
struct QAct {
  const float* x;
  size_t ldx;
  const int8_t* q;
  const float* s;
  const float* corr;
  size_t ldq, ldc;
  const int32_t* sum = nullptr;  // per-block sums of q: row t's at sum + t * (ldq / 32)
};

// Where PrepareAct puts T rows of `cols` in its workspace: q [T, ldq] int8, then s and the per-block
// sums of q (int32), [T, ldq / 32] each, then corr: room for [T, ldq / 4] 4-byte values (a table's
// int4 corrections, per group or per 4 columns); every region kAlign (64) aligned.
struct ActLayout {
  size_t ldq, s, sum, corr, bytes;  // row stride of q; byte offsets; total bytes
};
inline ActLayout act_layout(size_t T, size_t cols) {
  const size_t ldq = (cols + 63) / 64 * 64, region = (T * (ldq / 32) * 4 + 63) / 64 * 64;
  return ActLayout{ldq, T * ldq, T * ldq + region, T * ldq + 2 * region, 2 * T * ldq + 2 * region};
}

// Tokens per chunk of the wkv recurrence's chunked form (WkvScan), and the workspace floats it needs per head
// of K keys and V values: four [chunk, K] and two [K] vectors, four [chunk, chunk] score tables, [chunk, V].
inline constexpr size_t kWkvChunk = 16;
constexpr size_t wkv_chunk_floats(size_t K, size_t V) {
  return (4 * kWkvChunk + 2) * K + 4 * kWkvChunk * kWkvChunk + kWkvChunk * V;
}

// Tokens per chunk of Mamba-2's SSD in its chunked form (Mamba2Ssd), and the workspace floats it needs per
// head of P channels: [chunk, P], two [chunk, chunk] tables, two [chunk] vectors.
inline constexpr size_t kSsdChunk = 16;
constexpr size_t ssd_chunk_floats(size_t P) { return kSsdChunk * P + 2 * kSsdChunk * kSsdChunk + 2 * kSsdChunk; }

// The per-token vectors of the wkv recurrence (WkvScan, wkv_step).
struct WkvIo {
  const float *r, *w, *k, *v, *a, *b;  // a, b: null for a plain gated outer product
  float* y;
};
// Token t's vectors: the key-side ones `lk` floats apart, v and y `lv` apart.
inline WkvIo wkv_at(const WkvIo& io, size_t t, size_t lk, size_t lv) {
  auto at = [&](const float* p) { return p ? p + t * lk : nullptr; };
  return WkvIo{at(io.r), at(io.w), at(io.k), io.v + t * lv, at(io.a), at(io.b), io.y + t * lv};
}

// Kernel signatures (function types: `MatvecF32 matvec_f32__avx2;` declares one kernel).
// y[r] = sum_c W[r, c] * x[c]; W row-major [rows, cols].
using MatvecF32 = void(const float* W, const float* x, float* y, size_t rows, size_t cols);
using MatvecF16 = void(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols);
// int8 weights, one f32 scale per row: y[r] = scale[r] * sum_c W[r, c] x[c]. Activations: row 0 of a.
using MatvecQ8 = void(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols);
// int4 weights in groups of `group` (32/64/128) with f16 scales; layout in TensorView (core/tensor.h).
using MatvecQ4 = void(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y, size_t rows,
                      size_t cols);
// T tokens at once, any T: Y[t, r] = sum_c W[r, c] X[t, c], Y rows ldy apart; each weight row is read
// once for all T tokens, and the results are bit-identical to T matvec calls.
using MatmulF32 = void(const float* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                       size_t T);
using MatmulF16 = void(const uint16_t* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                       size_t T);
using MatmulQ8 = void(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                      size_t cols, size_t T);
using MatmulQ4 = void(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                      size_t rows, size_t cols, size_t T);
// The same product over int4 weights in the 16-row interleaved layout (q4x16_value below), for rows a
// multiple of 16 (the backend gives a tail to the row kernels). One kernel serves every T (T = 1 is the
// matrix-vector product), so T tokens at once give the bits of T single tokens.
using MatmulQ4x16 = MatmulQ4;
// int8 weights in the 16-row layout (q8x16_value), one f32 scale per row; any T, rows a multiple of 16.
using MatmulQ8x16 = void(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                         size_t cols, size_t T);
// Fills `a` (x, ldx included) for T rows of `cols` floats, carving q, s, sum and corr from `work`
// (prepare_act_bytes(T, cols) bytes, kAlign-aligned); group = the int4 group size, or 0. Only rows
// [t0, t1) are quantized (the whole layout's `a` is filled either way): a row's bytes do not depend on
// the range, so disjoint ranges can go to several threads.
using PrepareAct = void(const float* X, size_t ldx, size_t T, size_t cols, size_t group, unsigned char* work,
                        QAct* a, size_t t0, size_t t1);
// Mamba-1 selective-scan step (Euler B, exact exp(dt A)), with D skip and silu(z) gate.
//   s [N, E] persistent (state-dim-major, so channels are contiguous); A [N, E];
//   dt, x, D, z [E]; B, C [N]; y [E] out.
//   s[n,c] = exp(dt[c] A[n,c]) s[n,c] + dt[c] B[n] x[c];  y[c] = (sum_n s[n,c] C[n] + D[c] x[c]) silu(z[c])
//   Only channels [c0, c1) are computed (c0 a multiple of 16; c1 one too, or E): a channel's bits do not
//   depend on the range it is computed in, so channel ranges can go to several threads.
using Mamba1Scan = void(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                        const float* D, const float* z, float* y, size_t E, size_t N, size_t c0, size_t c1);

// S4D step (a diagonal complex SSM after zero-order hold) for H channels of M modes; s, A, C [M, 2, H]
// (mode m: H real parts, then H imaginary parts); D, u, y [H]:
//   s_m = A_m s_m + u  (complex; u real);   y = 2 Re(sum_m C_m s_m) + D u
using S4dStep = void(float* s, const float* A, const float* C, const float* D, const float* u, float* y, size_t H,
                     size_t M);

// The Mamba-2 (SSD) step over T tokens of one stream, in order (mamba2_scan_step's math per token), for
// heads [h0, h1) (heads are independent: threads may take disjoint ranges).
//   S [H, P, N] persistent; token t's x [H*P], B, C [G, N] at x, B, C + t * ldx; dt [T, H]; y [T, H*P].
// work null: the recurrence token by token, the same bits whatever T is. Otherwise head h's workspace of
// ssd_chunk_floats(P) floats at work + h * ssd_chunk_floats(P), and a table may take T >= kSsdChunk tokens
// in the chunked form (scans.inl, ssdc): the same values within f32 rounding, not the same bits.
using Mamba2Ssd = void(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt,
                       const float* A, const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G,
                       float* work, size_t h0, size_t h1);
// A matrix state per head over T tokens of one stream, in order (wkv_step's math per token), for heads
// [h0, h1): RWKV-6/7, GLA, RetNet and Gated DeltaNet are all this recurrence (docs/architectures.md).
//   S [H, V, K] persistent (S[h][i][j], i the value index, j the key index). Token t's r, w, k, a, b
//   at + t*H*K, its v and y at + t*H*V. a and b both null: no delta term.
// work null: the recurrence token by token, the same bits whatever T is. Otherwise head h's workspace of
// wkv_chunk_floats(K, V) floats at work + h * wkv_chunk_floats(K, V), and a table may take T >= kWkvChunk
// tokens in the chunked form (scans.inl, wkvc): the same values within f32 rounding, not the same bits.
using WkvScan = void(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t V, bool read_first,
                     float* work, size_t h0, size_t h1);

// Elementwise functions (core/act.h), in place on n floats.
using Activation = void(Act kind, float* y, size_t n);
// e^x in place on n floats: the vector exp the table's scans and activations use, exposed so its
// accuracy can be measured on its own (kernels_test). Vector tables clamp x to [-87.3, 88.3].
using VecExp = void(float* y, size_t n);
// Depthwise causal conv step + SiLU (conv1d_step_silu's math) over T tokens of one stream, in order:
// hist [K-1, C]; w [K, C]; b [C] or null; token t's input at X + t * ldx; Y [T, C]. Without `silu`, the
// plain conv (Griffin's recurrent block). Only channels [c0, c1), as Mamba1Scan's range.
using ConvSilu = void(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                      size_t C, size_t K, bool silu, size_t c0, size_t c1);
// gated_rmsnorm over n rows: Y [n, E] in place, Z rows ldz apart.
using GatedRmsnorm = void(float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G,
                          float eps);
// layernorm over n rows of d.
using Layernorm = void(const float* X, const float* w, const float* b, float* Y, size_t n, size_t d, float eps);
// Attention of G query heads that share one key/value head, over n cached slots: slot s's key at
// K + s * stride and value at V + s * stride (D floats, or D halves when f16); Q, Y [G, D];
// scores [G, ldsc] scratch (ldsc >= n). y_h = sum_s softmax_s(scale q_h . k_s) v_s.
using AttendGroup = void(const void* K, const void* V, bool f16, size_t stride, size_t n, const float* Q, size_t G,
                         size_t D, float scale, float* scores, size_t ldsc, float* Y);

// One ISA's kernels, filled by name (dispatch.cc); every entry but prepare_act is required.
struct Table {
  const char* isa;
  Required<MatvecF32> matvec_f32;
  Required<MatvecF16> matvec_f16;
  Required<Mamba1Scan> mamba1_scan;
  Required<MatvecQ8> matvec_q8;
  Required<MatvecQ4> matvec_q4;
  Required<MatmulQ8> matmul_q8;
  Required<MatmulQ4> matmul_q4;
  Required<MatmulF32> matmul_f32;
  Required<MatmulF16> matmul_f16;
  Required<MatmulQ4x16> matmul_q4x16;
  Required<MatmulQ8x16> matmul_q8x16;
  PrepareAct* prepare_act;  // null: the quantized kernels read the float activations (a.x) only
  Required<S4dStep> s4d_step;
  Required<Mamba2Ssd> mamba2_ssd;
  Required<WkvScan> wkv_scan;
  Required<Activation> act;
  Required<VecExp> exp;
  Required<ConvSilu> conv_silu;
  Required<GatedRmsnorm> gated_rmsnorm;
  Required<Layernorm> layernorm;
  Required<AttendGroup> attend_group;
  // The smallest head (in keys) for which a prefill takes wkv_scan's chunked form; 0: never. Where it
  // measured faster than the recurrence (rill_kernel_bench --wkv, docs/performance.md): on AVX-512 from
  // 128 keys (GLA 340M 1.24x, Gated DeltaNet 1.3B 1.39x on Zen 4; RWKV-7's 64 keys 0.99x). AVX2 measured
  // slower (its 16 registers hold smaller tiles); NEON has not been measured on an ARM machine: both
  // keep the recurrence.
  size_t wkv_chunk_keys = 0;
  // The smallest state (d_state) for which a prefill takes mamba2_ssd's chunked form; 0: never. 64 on AVX2
  // and AVX-512, where rill_kernel_bench --ssd measured it 2.1x and 2.65x faster on Mamba-2 130m's heads
  // (docs/performance.md); NEON has not been measured on an ARM machine and keeps the recurrence.
  size_t ssd_chunk_state = 0;
};

// Workspace bytes PrepareAct needs for T rows of `cols`, any group size.
inline size_t prepare_act_bytes(size_t T, size_t cols) { return act_layout(T, cols).bytes; }
// The QAct of float activations only (for tables without prepare_act).
inline QAct float_act(const float* X, size_t ldx) { return QAct{X, ldx, nullptr, nullptr, nullptr, 0, 0}; }

// The table for this CPU (chosen once).
const Table& active();
// Whether this CPU runs the avx2 table (AVX2, FMA and F16C; false where the build has none): also the
// converter's choice of its AVX2 / F16C loops.
bool cpu_runs_avx2();
// All tables this build and CPU can run, the reference first, for parity tests. Returns the count.
size_t available(const Table** out, size_t max);
// All tables this build holds, whether this CPU runs them or not (the tests name those they could not run).
size_t compiled(const Table** out, size_t max);

// ---- scalar row kernels (one implementation; the CPU backend's ops loop them over rows)

// out = x / sqrt(mean(x^2) + eps) * w
void rmsnorm(const float* x, const float* w, float* out, size_t n, float eps);

// Depthwise causal conv step with SiLU, one new sample per channel.
//   hist [K-1, E] oldest first (persistent), w [K, E] (w[K-1] hits the newest sample), b [E] or null.
//   out[c] = silu(b[c] + sum_{k<K-1} w[k][c] * hist[k][c] + w[K-1][c] * x[c]); then hist shifts in x.
// Without `silu`, out is the sum itself.
void conv1d_step_silu(float* hist, const float* w, const float* b, const float* x, float* out, size_t E,
                      size_t K, bool silu = true);

// Mamba-2 (SSD) step, scalar decay per head, heads mapped to groups contiguously (g = h / (H/G)).
//   S [H, P, N] persistent; x, D, y [H*P]; B, C [G, N]; dt, A [H] (dt after softplus and clamp, A < 0).
//   S[h,p,n] = exp(dt[h] A[h]) S[h,p,n] + dt[h] x[h,p] B[g,n];  y[h,p] = sum_n S[h,p,n] C[g,n] + D[h,p] x[h,p]
// Heads [h0, h1) only.
void mamba2_scan_step(float* S, const float* x, const float* B, const float* C, const float* dt, const float* A,
                      const float* D, float* y, size_t H, size_t P, size_t N, size_t G, size_t h0, size_t h1);

// Gated RMSNorm of Mamba-2 (mamba_ssm form, gate before norm): y = y * silu(z), then each of the G
// groups of E/G channels is RMS-normalised on its own, times w.  y, z, w [E].
void gated_rmsnorm(float* y, const float* z, const float* w, size_t E, size_t G, float eps);

// out = (x - mean) / sqrt(var + eps) * w + b   (biased variance)
void layernorm(const float* x, const float* w, const float* b, float* out, size_t n, float eps);

// One token of the wkv recurrence, per head h, S [H, V, K] with S[h][i][j], i the value index and j the
// key index; r, w, k, a, b [H*K], v, y [H*V]:
//   sa_i = sum_j S_ij a_j  (old S; 0 without a);   S_ij = S_ij w_j + sa_i b_j + v_i k_j;
//   y_i = sum_j S_ij r_j over the new S (RWKV-7, GLA, RetNet, Gated DeltaNet) or, with read_first, the
//   old one (RWKV-6, whose bonus term is added apart). Heads [h0, h1).
void wkv_step(float* S, const WkvIo& io, size_t H, size_t K, size_t V, bool read_first, size_t h0, size_t h1);

// GroupNorm over H groups of N channels: each group normalised on its own, then * w + b.  y [H*N].
void group_norm(float* y, const float* w, const float* b, size_t H, size_t N, float eps);

// softplus with PyTorch's threshold: x > 20 -> x.
float softplus(float x);
float silu(float x);
float sigmoid(float x);

// Dequantises element c of a row of an int4 tensor (the layout in TensorView); for tests and gathers.
inline int q4_value(const uint8_t* row, size_t c) {
  const uint8_t byte = row[(c / 32) * 16 + (c % 16)];
  return ((c % 32) < 16 ? (byte & 0xF) : (byte >> 4)) - 8;
}

// The 16-row interleaved layouts (QuantScheme GroupedRows16 for int4, PerRowRows16 for int8), chosen
// by the converter for the vector kernels: 16 rows side by side, one per 32-bit lane, so one 64-byte
// load feeds every lane with columns of its own row and a lane's products never cross lanes. AVX-512
// VNNI multiplies a lane's 4 bytes with 4 broadcast activations (vpdpbusd); NEON's 4-lane vectors and
// AVX2's 8 take the same order, so the layout is one for every ISA.
//   Rows 16i..16i+15 of the first rows - rows % 16 are interleaved; the last rows % 16 rows follow row
//   by row in the plain layout (q4_value; signed int8), where a row's bytes would begin anyway.
//   int4: rows 16i.. take bytes [8 cols i, 8 cols (i+1)); columns 8k..8k+7 take 64 bytes at 64k, byte
//   4l + j holding row 16i+l's column 8k+j in its low nibble and column 8k+4+j in its high one (q + 8).
//   Scales (f16, one per `group` columns): row r's scale of group g at ((r / 16) groups + g) 16 + r % 16
//   in the interleaved rows, r groups + g in the tail.
//   int8: rows 16i.. take bytes [16 cols i, 16 cols (i+1)); columns 4k..4k+3 take 64 bytes at 64k, byte
//   4l + j holding row 16i+l's column 4k+j as w + 128 (unsigned: vpdpbusd takes the weights as its
//   unsigned operand, and the correction -128 sum(q) depends on the activations only). Scales stay one
//   f32 per row, in row order.
inline bool x16_tail(size_t rows, size_t r) { return r >= rows / 16 * 16; }
inline int q4x16_value(const uint8_t* W, size_t rows, size_t cols, size_t r, size_t c) {
  if (x16_tail(rows, r)) return q4_value(W + r * (cols / 2), c);
  const uint8_t byte = W[(r / 16) * 8 * cols + (c / 8) * 64 + (r % 16) * 4 + (c % 4)];
  return ((c % 8) < 4 ? (byte & 0xF) : (byte >> 4)) - 8;
}
inline size_t q4x16_scale_index(size_t rows, size_t groups, size_t r, size_t g) {
  return x16_tail(rows, r) ? r * groups + g : ((r / 16) * groups + g) * 16 + r % 16;
}
inline int q8x16_value(const uint8_t* W, size_t rows, size_t cols, size_t r, size_t c) {
  if (x16_tail(rows, r)) return static_cast<int8_t>(W[r * cols + c]);
  return static_cast<int>(W[(r / 16) * 16 * cols + (c / 4) * 64 + (r % 16) * 4 + (c % 4)]) - 128;
}
// Rewrite a [rows, cols] tensor from the row layout into the 16-row one (data rows * cols / 2 or
// rows * cols bytes; int4 scales rows * (cols / group) f16 values; int8 scales are unchanged).
void q4_to_x16(const uint8_t* data, const uint16_t* scales, size_t rows, size_t cols, size_t group, uint8_t* out,
               uint16_t* out_scales);
void q8_to_x16(const int8_t* data, size_t rows, size_t cols, uint8_t* out);

// IEEE binary16 <-> binary32 (round to nearest even).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);

}  // namespace kernels
}  // namespace rill
