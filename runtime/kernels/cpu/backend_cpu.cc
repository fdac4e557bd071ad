// The CPU backend: its op table and its memory. Weights are the mapped file, used in place; state and
// scratch live in the caller's arena. Each op loops over its rows and calls the kernels one level
// below: the products, scans and row ops through the backend's kernel table (one CPU backend per table:
// cpu-ref, cpu-avx2, cpu-avx512vnni, cpu-neon, cpu-neon-dotprod, cpu-neon-i8mm), the rest through the
// scalar row kernels.
// Matrix products split their rows over the caller's ParallelFor; nothing else is threaded.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "backend/backend.h"
#include "kernels/kernels.h"

namespace rill {
namespace {

using kernels::QAct;
using kernels::Table;

const Table& table(const Exec& x) { return *static_cast<const Table*>(x.backend->impl); }

// ---- gathers and products

void embedding_row(const TensorView& W, uint64_t r, float* out) {
  const uint64_t d = W.cols();
  if (W.dtype == DType::kF32) {
    std::memcpy(out, static_cast<const float*>(W.data) + r * d, d * sizeof(float));
  } else if (W.dtype == DType::kF16) {
    const uint16_t* p = static_cast<const uint16_t*>(W.data) + r * d;
    for (uint64_t i = 0; i < d; ++i) out[i] = kernels::f16_to_f32(p[i]);
  } else if (W.dtype == DType::kI8 && W.rows16) {
    const uint8_t* p = static_cast<const uint8_t*>(W.data);
    const float s = static_cast<const float*>(W.scales)[r];
    for (uint64_t i = 0; i < d; ++i) out[i] = static_cast<float>(kernels::q8x16_value(p, W.rows(), d, r, i)) * s;
  } else if (W.dtype == DType::kI8) {
    const int8_t* p = static_cast<const int8_t*>(W.data) + r * d;
    const float s = static_cast<const float*>(W.scales)[r];
    for (uint64_t i = 0; i < d; ++i) out[i] = p[i] * s;
  } else if (W.rows16) {
    const uint8_t* p = static_cast<const uint8_t*>(W.data);
    const uint16_t* s = static_cast<const uint16_t*>(W.scales);
    const uint64_t groups = d / W.group;
    for (uint64_t i = 0; i < d; ++i)
      out[i] = static_cast<float>(kernels::q4x16_value(p, W.rows(), d, r, i)) *
               kernels::f16_to_f32(s[kernels::q4x16_scale_index(W.rows(), groups, r, i / W.group)]);
  } else {
    const uint8_t* p = static_cast<const uint8_t*>(W.data) + r * (d / 2);
    const uint16_t* s = static_cast<const uint16_t*>(W.scales) + r * (d / W.group);
    for (uint64_t i = 0; i < d; ++i) out[i] = static_cast<float>(kernels::q4_value(p, i)) * kernels::f16_to_f32(s[i / W.group]);
  }
}

void embed(const Exec&, const TensorView& W, const int32_t* tokens, float* out, size_t n) {
  const size_t d = W.cols();
  for (size_t i = 0; i < n; ++i) embedding_row(W, static_cast<uint64_t>(tokens[i]), out + i * d);
}

// One product Y[i] = W X[i] over n rows; a slice of W's rows at a time.
struct Product {
  const Table* t;
  const TensorView* W;
  const QAct* a;  // the activations (X, ldx; prepared int8 form where the table has one)
  float* Y;
  size_t ldy, n;
};
using SliceFn = void (*)(const Product& p, size_t r0, size_t rows);

// n == 1 takes the matrix-vector kernels (their own unrolling); results are bit-identical either way.
void slice_f32(const Product& p, size_t r0, size_t rows) {
  const size_t cols = p.W->cols();
  const float* W = p.W->f32() + r0 * cols;
  if (p.n == 1) p.t->matvec_f32(W, p.a->x, p.Y + r0, rows, cols);
  else p.t->matmul_f32(W, p.a->x, p.a->ldx, p.Y + r0, p.ldy, rows, cols, p.n);
}

void slice_f16(const Product& p, size_t r0, size_t rows) {
  const size_t cols = p.W->cols();
  const uint16_t* W = static_cast<const uint16_t*>(p.W->data) + r0 * cols;
  if (p.n == 1) p.t->matvec_f16(W, p.a->x, p.Y + r0, rows, cols);
  else p.t->matmul_f16(W, p.a->x, p.a->ldx, p.Y + r0, p.ldy, rows, cols, p.n);
}

void slice_q8(const Product& p, size_t r0, size_t rows) {
  const size_t cols = p.W->cols();
  const int8_t* W = static_cast<const int8_t*>(p.W->data) + r0 * cols;
  const float* s = static_cast<const float*>(p.W->scales) + r0;
  if (p.n == 1) p.t->matvec_q8(W, s, *p.a, p.Y + r0, rows, cols);
  else p.t->matmul_q8(W, s, *p.a, p.Y + r0, p.ldy, rows, cols, p.n);
}

void slice_q4(const Product& p, size_t r0, size_t rows) {
  const size_t cols = p.W->cols(), g = p.W->group;
  const uint8_t* W = static_cast<const uint8_t*>(p.W->data) + r0 * (cols / 2);
  const uint16_t* s = static_cast<const uint16_t*>(p.W->scales) + r0 * (cols / g);
  if (p.n == 1) p.t->matvec_q4(W, s, g, *p.a, p.Y + r0, rows, cols);
  else p.t->matmul_q4(W, s, g, *p.a, p.Y + r0, p.ldy, rows, cols, p.n);
}

// ---- splitting an op over the pool
//
// Heads, channels and rows of an op are independent: with a pool, they are cut into kSlicesPerThread
// contiguous ranges per thread, when the op touches at least `min_work` elements (below that, waking
// the pool costs more than the work). pthreadpool hands each thread a run of ranges and lets a thread
// that finishes take ranges another has not started, so a thread that runs slower (a busy sibling
// core, a host's preemption) no longer holds the others at the end of every op: on the 2-core VM,
// 2-thread prefill of RWKV-7 0.1B spent 11 % of its samples in the pool's wait with one range per
// thread, 5 % with four. Scans split above kSplitElems state elements per run (one RWKV-7 0.1B decode
// step is 49K, one Mamba-2 130m step 196K, one Mamba-1 130m step 25K: each of these splits, which
// took two-thread decode from 192 to 203 tokens/s for Mamba 130m and 196 to 204 for RWKV-7 0.1B,
// medians of six rounds alternating, against a bound of 64K); row ops above kRowSplit
// elements (a 32-token prefill chunk of a 768-wide model is 25K). Range boundaries fall on multiples
// of `unit`, and no split changes any element's arithmetic, so results do not depend on the thread
// count.
constexpr size_t kSplitElems = size_t(1) << 14;
constexpr size_t kRowSplit = size_t(1) << 14;
constexpr size_t kSlicesPerThread = 4;

template <class Fn>
void split(const Exec& x, size_t count, size_t unit, size_t work, size_t min_work, Fn fn) {
  const ParallelFor* pool = x.pool;
  const size_t units = (count + unit - 1) / unit;
  if (!pool || !pool->run || pool->n_threads < 2 || units < 2 || work < min_work) {
    fn(size_t(0), count);
    return;
  }
  const size_t slices = pool->n_threads * kSlicesPerThread;
  struct Ctx {
    Fn* fn;
    size_t count, unit, units, parts;
  } ctx{&fn, count, unit, units, slices < units ? slices : units};
  pool->run(
      pool,
      [](void* c, size_t i) {
        const Ctx& k = *static_cast<const Ctx*>(c);
        const size_t b = k.units * i / k.parts * k.unit, e = k.units * (i + 1) / k.parts * k.unit;
        (*k.fn)(b, e < k.count ? e : k.count);
      },
      &ctx, ctx.parts);
}

// The 16-row layouts: slices start at a multiple of 16 rows, where a row group's bytes and scales begin
// as a row's would in the row layout; one kernel for every n. The last rows % 16 rows are stored row
// by row and go to the row kernels.
size_t interleaved_part(const Product& p, size_t r0, size_t rows) {
  const size_t full = p.W->rows() / 16 * 16;
  return r0 >= full ? 0 : (r0 + rows <= full ? rows : full - r0);
}

void slice_q4x16(const Product& p, size_t r0, size_t rows) {
  const size_t cols = p.W->cols(), g = p.W->group, n16 = interleaved_part(p, r0, rows);
  const uint8_t* W = static_cast<const uint8_t*>(p.W->data) + r0 * (cols / 2);
  const uint16_t* s = static_cast<const uint16_t*>(p.W->scales) + r0 * (cols / g);
  if (n16) p.t->matmul_q4x16(W, s, g, *p.a, p.Y + r0, p.ldy, n16, cols, p.n);
  if (n16 < rows) slice_q4(p, r0 + n16, rows - n16);
}

void slice_q8x16(const Product& p, size_t r0, size_t rows) {
  const size_t cols = p.W->cols(), n16 = interleaved_part(p, r0, rows);
  if (n16)
    p.t->matmul_q8x16(static_cast<const uint8_t*>(p.W->data) + r0 * cols, static_cast<const float*>(p.W->scales) + r0,
                      *p.a, p.Y + r0, p.ldy, n16, cols, p.n);
  if (n16 < rows) slice_q8(p, r0 + n16, rows - n16);
}

// With a pool of several threads and at least 64 rows, the rows split as an op's (split: kSlicesPerThread
// contiguous slices per thread, each streamed sequentially). Rows are independent, so results do not
// depend on the split.
// The 16-row layouts slice at multiples of 16 rows, and their kernels need only the int8 activations and
// their block sums (group 0 to prepare_act), unless an int4 tail of rows goes to the row kernels.
template <SliceFn Fn>
void matmul(const Exec& x, const TensorView& W, const float* X, size_t ldx, float* Y, size_t ldy, size_t n) {
  const Table& t = table(x);
  QAct a = kernels::float_act(X, ldx);
  const bool quantized = W.dtype == DType::kI8 || W.dtype == DType::kI4;
  const SliceFn fn = !W.rows16 ? Fn : W.dtype == DType::kI4 ? slice_q4x16 : slice_q8x16;
  const size_t unit = W.rows16 ? 16 : 1;
  if (quantized && t.prepare_act) {  // a prefill's rows split over the pool, as a row op's
    const size_t group = W.dtype == DType::kI4 && (!W.rows16 || W.rows() % 16) ? W.group : 0;
    split(x, n, 1, n * W.cols(), kRowSplit, [&](size_t i0, size_t i1) {
      QAct part;
      t.prepare_act(X, ldx, n, W.cols(), group, x.work, &part, i0, i1);
      if (i0 == 0) a = part;
    });
  }
  const Product p{&t, &W, &a, Y, ldy, n};
  const size_t rows = W.rows();
  split(x, rows, unit, rows, 64, [&](size_t r0, size_t r1) { fn(p, r0, r1 - r0); });
}

// Rows i..i+len-1 advance one state (a prefill chunk of one stream): the scans take them as one run.
size_t same_state_run(StateRef S, size_t i, size_t n) {
  size_t len = 1;
  while (i + len < n && S.base[i + len] == S.base[i]) ++len;
  return len;
}

template <class Fn>
void over_heads(const Exec& x, size_t H, size_t elems, Fn fn) {
  split(x, H, 1, elems, kSplitElems, fn);
}

// ---- norms

void rmsnorm(const Exec& x, const float* X, const float* w, float* Y, size_t n, size_t d, float eps) {
  split(x, n, 1, n * d, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) kernels::rmsnorm(X + i * d, w, Y + i * d, d, eps);
  });
}

void layernorm(const Exec& x, const float* X, const float* w, const float* b, float* Y, size_t n, size_t d,
               float eps) {
  split(x, n, 1, n * d, kRowSplit,
        [&](size_t i0, size_t i1) { table(x).layernorm(X + i0 * d, w, b, Y + i0 * d, i1 - i0, d, eps); });
}

void group_norm(const Exec& x, float* Y, const float* w, const float* b, size_t n, size_t H, size_t N, float eps) {
  split(x, n, 1, n * H * N, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) kernels::group_norm(Y + i * H * N, w, b, H, N, eps);
  });
}

void gated_rmsnorm(const Exec& x, float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E,
                   size_t G, float eps) {
  split(x, n, 1, n * E, kRowSplit, [&](size_t i0, size_t i1) {
    table(x).gated_rmsnorm(Y + i0 * E, Z + i0 * ldz, ldz, w, i1 - i0, E, G, eps);
  });
}

// ---- recurrences


void ssm_scan(const Exec& x, StateRef s, const float* A, const float* dt, const float* X, const float* B,
              const float* C, size_t ldbc, const float* D, const float* Z, size_t ldz, float* Y, size_t n, size_t E,
              size_t N) {
  const Table& t = table(x);
  for (size_t i = 0, len; i < n; i += len) {
    len = same_state_run(s, i, n);
    split(x, E, 16, len * E * N, kSplitElems, [&](size_t c0, size_t c1) {
      for (size_t j = i; j < i + len; ++j)
        t.mamba1_scan(s.row(j), A, dt + j * E, X + j * E, B + j * ldbc, C + j * ldbc, D, Z + j * ldz, Y + j * E, E, N,
                      c0, c1);
    });
  }
}

void conv_step(const Exec& x, StateRef hist, const float* w, const float* b, const float* X, size_t ldx, float* Y,
               size_t n, size_t C, size_t K, bool silu) {
  const Table& t = table(x);
  for (size_t i = 0, len; i < n; i += len) {
    len = same_state_run(hist, i, n);
    split(x, C, 16, len * C * K, kRowSplit, [&](size_t c0, size_t c1) {
      t.conv_silu(hist.row(i), w, b, X + i * ldx, ldx, Y + i * C, len, C, K, silu, c0, c1);
    });
  }
}

static_assert(kernels::kSsdChunk == kSsdChunkTokens && kernels::ssd_chunk_floats(80) == ssd_work_floats(80));

void ssd_step(const Exec& x, StateRef S, const float* X, const float* B, const float* C, size_t ldx, const float* dt,
              const float* A, const float* D, float* Y, size_t n, size_t H, size_t P, size_t N, size_t G, float* work) {
  const Table& t = table(x);
  float* chunk_work = x.chunked_prefill && t.ssd_chunk_state && N >= t.ssd_chunk_state ? work : nullptr;
  for (size_t i = 0, len; i < n; i += len) {
    len = same_state_run(S, i, n);
    over_heads(x, H, len * H * P * N, [&](size_t h0, size_t h1) {
      t.mamba2_ssd(S.row(i), X + i * ldx, B + i * ldx, C + i * ldx, ldx, dt + i * H, A, D, Y + i * H * P, len, H, P,
                   N, G, chunk_work, h0, h1);
    });
  }
}

static_assert(kernels::kWkvChunk == kWkvChunkTokens &&
              kernels::wkv_chunk_floats(48, 80) == wkv_work_floats(48, 80));

void wkv(const Exec& x, StateRef S, const float* r, const float* w, const float* k, const float* v, const float* a,
         const float* b, float* Y, size_t n, size_t H, size_t K, size_t V, bool read_first, float* work) {
  const Table& t = table(x);
  float* chunk_work = x.chunked_prefill && t.wkv_chunk_keys && K >= t.wkv_chunk_keys ? work : nullptr;
  for (size_t i = 0, len; i < n; i += len) {
    len = same_state_run(S, i, n);
    const kernels::WkvIo io = kernels::wkv_at({r, w, k, v, a, b, Y}, i, H * K, H * V);
    over_heads(x, H, len * H * K * V,
               [&](size_t h0, size_t h1) { t.wkv_scan(S.row(i), io, len, H, K, V, read_first, chunk_work, h0, h1); });
  }
}

void s4d_step(const Exec& x, StateRef s, const float* A, const float* C, const float* D, const float* U, float* Y,
              size_t n, size_t H, size_t M) {
  const Table& t = table(x);
  for (size_t i = 0; i < n; ++i) t.s4d_step(s.row(i), A, C, D, U + i * H, Y + i * H, H, M);
}

void running_mean(const Exec&, StateRef mean, StateRef count, float* X, size_t n, size_t d) {
  for (size_t i = 0; i < n; ++i) {
    float* m = mean.row(i);
    float& c = *count.row(i);
    if (c < 16777216.f) c += 1.f;  // 2^24: beyond it, c + 1 == c in f32
    const float inv = 1.f / c;
    float* x = X + i * d;
    for (size_t j = 0; j < d; ++j) {
      m[j] += (x[j] - m[j]) * inv;
      x[j] = m[j];
    }
  }
}

// Rows of one stream follow each other through `prev`, so the split is over channels.
void token_shift(const Exec& x, StateRef prev, const float* U, const float* mix, const float* D, size_t ldd, size_t k,
                 float* Y, size_t ldy, size_t n, size_t C, bool advance) {
  split(x, C, 16, n * C * (k + 1), kRowSplit, [&](size_t c0, size_t c1) {
    for (size_t i = 0; i < n; ++i) {
      float* p = prev.row(i);
      // Without advancing, a row sees the input of the last row before it of the same stream, if any.
      const float* src = p;
      for (size_t j = i; !advance && j-- > 0;)
        if (prev.row(j) == p) {
          src = U + j * C;
          break;
        }
      const float* u = U + i * C;
      const float* d_row = D ? D + i * ldd : nullptr;
      float* y = Y + i * ldy;
      // Blocks of channels: u and prev - u copied first (y may be u), then each mix in one plain loop
      // the compiler vectorizes; each element's arithmetic is the same as one channel at a time.
      constexpr size_t kBlock = 256;
      float ub[kBlock], db[kBlock];
      for (size_t b0 = c0; b0 < c1; b0 += kBlock) {
        const size_t len = c1 - b0 < kBlock ? c1 - b0 : kBlock;
        for (size_t c = 0; c < len; ++c) ub[c] = u[b0 + c], db[c] = src[b0 + c] - ub[c];
        if (advance)
          for (size_t c = 0; c < len; ++c) p[b0 + c] = ub[c];
        for (size_t j = 0; j < k; ++j) {
          float* yj = y + j * C + b0;
          const float* mj = mix + j * C + b0;
          if (d_row) {
            const float* dj = d_row + j * C + b0;
            for (size_t c = 0; c < len; ++c) yj[c] = ub[c] + db[c] * (mj[c] + dj[c]);
          } else {
            for (size_t c = 0; c < len; ++c) yj[c] = ub[c] + db[c] * mj[c];
          }
        }
      }
    }
  });
}

// ---- positions and local attention (RecurrentGemma)

void positions(const Exec&, StateRef pos, int64_t* P, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    int64_t* p = reinterpret_cast<int64_t*>(pos.bytes(i));
    P[i] = *p;
    *p = *p < INT64_MAX ? *p + 1 : *p;
  }
}

// Channels are independent: with a pool, each thread takes a range of them for every row, in row order.
void rglru(const Exec& x, StateRef h, const float* X, const float* GX, const float* GA, const float* c,
           const int64_t* P, float* Y, size_t n, size_t W) {
  split(x, W, 16, n * W, kRowSplit, [&](size_t j0, size_t j1) { for (size_t i = 0; i < n; ++i) {
    float* s = h.row(i);
    const size_t o = i * W;
    const bool first = P[i] == 0;
    for (size_t j = j0; j < j1; ++j) {
      const float log_a = -c[j] * kernels::sigmoid(GA[o + j]);
      const float a = std::exp(log_a);
      float u = X[o + j] * kernels::sigmoid(GX[o + j]);
      if (!first) u *= std::sqrt(1.f - std::exp(2.f * log_a));
      s[j] = (first ? 0.f : a * s[j]) + u;
      Y[o + j] = s[j];
    }
  } });
}

void rope(const Exec& x, float* Y, size_t ldy, const int64_t* P, size_t n, size_t heads, size_t D, size_t R,
          float theta) {
  const size_t half = R / 2;
  split(x, n, 1, n * heads * R, kRowSplit, [&](size_t i0, size_t i1) { for (size_t i = i0; i < i1; ++i) {
    const float p = static_cast<float>(P[i]);
    for (size_t j = 0; j < half; ++j) {
      // inverse frequency and angle in f32, as transformers computes them
      const float inv = 1.f / std::pow(theta, static_cast<float>(2 * j) / static_cast<float>(R));
      const float f = p * inv, cs = std::cos(f), sn = std::sin(f);
      for (size_t hd = 0; hd < heads; ++hd) {
        float* y = Y + i * ldy + hd * D;
        const float a = y[j], b = y[j + half];
        y[j] = a * cs - b * sn;
        y[j + half] = b * cs + a * sn;
      }
    }
  } });
}

// Per row: the new key and value into slot P % window, then each key/value head's query heads through
// the table's attention kernel; with a pool, the heads split over threads (each head's scores row is its
// own), which does not change any head's arithmetic.
void attend(const Exec& x, StateRef Kr, StateRef Vr, bool f16, const float* Q, const float* Kn, const float* Vn,
            const int64_t* P, float* Y, size_t n, size_t H, size_t KV, size_t D, size_t window, float scale,
            float* scores) {
  const Table& t = table(x);
  const size_t kvd = KV * D, group = H / KV, es = f16 ? 2 : 4;
  for (size_t i = 0; i < n; ++i) {
    const size_t slot = static_cast<size_t>(static_cast<uint64_t>(P[i]) % window);
    const size_t filled = static_cast<uint64_t>(P[i]) + 1 < window ? static_cast<size_t>(P[i]) + 1 : window;
    unsigned char* K = Kr.bytes(i);
    unsigned char* V = Vr.bytes(i);
    if (f16) {
      uint16_t* k = reinterpret_cast<uint16_t*>(K) + slot * kvd;
      uint16_t* v = reinterpret_cast<uint16_t*>(V) + slot * kvd;
      for (size_t j = 0; j < kvd; ++j) k[j] = kernels::f32_to_f16(Kn[i * kvd + j]), v[j] = kernels::f32_to_f16(Vn[i * kvd + j]);
    } else {
      std::memcpy(K + slot * kvd * 4, Kn + i * kvd, kvd * sizeof(float));
      std::memcpy(V + slot * kvd * 4, Vn + i * kvd, kvd * sizeof(float));
    }
    over_heads(x, H, H * filled * D, [&](size_t h0, size_t h1) {
      for (size_t h = h0; h < h1;) {
        const size_t g = h / group, end = (g + 1) * group < h1 ? (g + 1) * group : h1;
        t.attend_group(K + g * D * es, V + g * D * es, f16, kvd, filled, Q + i * H * D + h * D, end - h, D, scale,
                       scores + h * window, window, Y + i * H * D + h * D);
        h = end;
      }
    });
  }
}

// ---- gates and activations

// The clamp by comparisons (maxss/minss) rather than std::fmax/fmin (library calls on x86-64): the same
// for every value but NaN, which passes through.
void softplus_dt(const Exec& x, const float* X, size_t ldx, const float* bias, float* Y, size_t n, size_t len,
                 float lo, float hi) {
  split(x, n, 1, n * len, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      float* y = Y + i * len;
      for (size_t c = 0; c < len; ++c) y[c] = X[i * ldx + c] + bias[c];
      table(x).act(Act::kSoftplus, y, len);
      for (size_t c = 0; c < len; ++c) y[c] = y[c] < lo ? lo : (y[c] > hi ? hi : y[c]);
    }
  });
}

// Every element's value is independent of its position (kernels.h, Activation), so any split serves.
void act(const Exec& x, Act kind, float* Y, size_t count) {
  split(x, count, 16, count, kRowSplit, [&](size_t b, size_t e) { table(x).act(kind, Y + b, e - b); });
}

// A few operations per element, bound by memory: split over the pool as the row ops are (above
// kRowSplit elements: a prefill chunk, never a decode step, where waking the pool costs more).
template <class F>
void elementwise(const Exec& x, size_t count, F f) {
  split(x, count, 16, count, kRowSplit, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) f(i);
  });
}

void add(const Exec& x, float* Y, const float* X, size_t count) {
  elementwise(x, count, [&](size_t i) { Y[i] += X[i]; });
}

void add_bias(const Exec& x, float* Y, const float* b, size_t n, size_t d) {
  split(x, n, 1, n * d, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i)
      for (size_t c = 0; c < d; ++c) Y[i * d + c] += b[c];
  });
}

void scale(const Exec& x, float* Y, float s, size_t count) {
  elementwise(x, count, [&](size_t i) { Y[i] *= s; });
}

void mul(const Exec& x, float* Y, const float* X, size_t count) {
  elementwise(x, count, [&](size_t i) { Y[i] *= X[i]; });
}

void lerp(const Exec& x, float* Y, const float* X, const float* T, size_t count) {
  elementwise(x, count, [&](size_t i) { Y[i] += (X[i] - Y[i]) * T[i]; });
}

// Row ops with square roots, exponentials or sigmoids per element: rows split over the pool above
// kRowSplit elements, as the norms are.

void glu(const Exec& x, const float* X, float* Y, size_t n, size_t H) {
  split(x, n, 1, n * H, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i)
      for (size_t c = 0; c < H; ++c) Y[i * H + c] = X[i * 2 * H + c] * kernels::sigmoid(X[i * 2 * H + H + c]);
  });
}

void standardize(const Exec& x, float* X, const float* mean, const float* std, size_t n, size_t d) {
  split(x, n, 1, n * d, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i)
      for (size_t c = 0; c < d; ++c) X[i * d + c] = (X[i * d + c] - mean[c]) / std[c];
  });
}

void wkv7_keys(const Exec& x, float* K, const float* A, const float* k_k, const float* k_a, float* NA, float* B,
               size_t n, size_t H, size_t N) {
  const size_t C = H * N;
  split(x, n, 1, n * C, kRowSplit, [&](size_t i0, size_t i1) { for (size_t i = i0; i < i1; ++i) {
    float* k = K + i * C;
    const float* a = A + i * C;
    float* kk = NA + i * C;  // kk, negated at the end
    float* b = B + i * C;
    for (size_t c = 0; c < C; ++c) kk[c] = k[c] * k_k[c];
    for (size_t h = 0; h < H; ++h) {
      float ss = 0.f;
      for (size_t j = 0; j < N; ++j) ss += kk[h * N + j] * kk[h * N + j];
      const float inv = 1.f / std::fmax(std::sqrt(ss), 1e-12f);
      for (size_t j = 0; j < N; ++j) kk[h * N + j] *= inv;
    }
    for (size_t c = 0; c < C; ++c) {
      k[c] *= 1.f + (a[c] - 1.f) * k_a[c];
      b[c] = kk[c] * a[c];
      kk[c] = -kk[c];
    }
  } });
}

void wkv7_bonus(const Exec& x, float* Y, const float* R, const float* K, const float* r_k, const float* V, size_t n,
                size_t H, size_t N) {
  const size_t C = H * N;
  split(x, n, 1, n * C, kRowSplit, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i)
      for (size_t h = 0; h < H; ++h) {
        const size_t o = i * C + h * N;
        float bonus = 0.f;
        for (size_t j = 0; j < N; ++j) bonus += R[o + j] * K[o + j] * r_k[h * N + j];
        for (size_t j = 0; j < N; ++j) Y[o + j] += bonus * V[o + j];
      }
  });
}

void delta_keys(const Exec& x, const float* X, size_t ldx, const float* dt, const float* A, const float* Bl, size_t ldb,
                float beta_scale, float* R, float* W, float* Kn, float* B, float* Vout, size_t n, size_t H, size_t Hv,
                size_t K, size_t Vd) {
  const size_t kd = H * K, per = Hv / H;
  const float scale = 1.f / std::sqrt(static_cast<float>(K));
  split(x, n, 1, n * Hv * (K + Vd), kRowSplit, [&](size_t i0, size_t i1) { for (size_t i = i0; i < i1; ++i) {
    const float *q = X + i * ldx, *k = q + kd, *v = k + kd;
    for (size_t hv = 0; hv < Hv; ++hv) {
      const float *qh = q + (hv / per) * K, *kh = k + (hv / per) * K;
      float sq = 0.f, sk = 0.f;
      for (size_t j = 0; j < K; ++j) sq += qh[j] * qh[j], sk += kh[j] * kh[j];
      const float iq = scale / std::sqrt(sq + 1e-6f), ik = 1.f / std::sqrt(sk + 1e-6f);
      const float alpha = std::exp(A[hv] * dt[i * Hv + hv]), beta = beta_scale * kernels::sigmoid(Bl[i * ldb + hv]);
      const size_t o = (i * Hv + hv) * K;
      for (size_t j = 0; j < K; ++j) {
        const float kk = kh[j] * ik;
        R[o + j] = qh[j] * iq;
        W[o + j] = alpha;
        Kn[o + j] = kk;
        B[o + j] = -alpha * beta * kk;
      }
      for (size_t c = 0; c < Vd; ++c) Vout[(i * Hv + hv) * Vd + c] = beta * v[hv * Vd + c];
    }
  } });
}

void gate_keys(const Exec& x, const float* X, size_t ldx, const float* G, size_t ldg, const float* gamma, float normalizer,
               float scale, float* R, float* W, float* Kn, float* Vout, size_t n, size_t H, size_t K, size_t Vd) {
  const size_t kd = H * K, vd = H * Vd;
  const Table& t = table(x);
  split(x, n, 1, n * (kd + vd), kRowSplit, [&](size_t i0, size_t i1) { for (size_t i = i0; i < i1; ++i) {
    const float *q = X + i * ldx, *k = q + kd, *v = k + kd;
    float* w = W + i * kd;
    for (size_t c = 0; c < kd; ++c) {
      R[i * kd + c] = q[c] * scale;
      Kn[i * kd + c] = k[c];
      w[c] = G ? -G[i * ldg + c] : gamma[c / K];
    }
    if (G) {  // exp(logsigmoid(g) / normalizer), logsigmoid(g) = -softplus(-g): the table's vector forms
      t.act(Act::kSoftplus, w, kd);
      const float s = -1.f / normalizer;
      for (size_t c = 0; c < kd; ++c) w[c] *= s;
      t.exp(w, kd);
    }
    for (size_t c = 0; c < vd; ++c) Vout[i * vd + c] = v[c];
  } });
}

const Ops kCpuOps = {
    .embed = embed,
    .matmul_by_dtype = {matmul<slice_f32>, matmul<slice_f16>, nullptr, matmul<slice_q8>, matmul<slice_q4>},
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

// ---- memory: the host's

Status place_in_place(int, const unsigned char* data, uint64_t, const unsigned char** out, Error*) {
  *out = data;
  return Status::kOk;
}

size_t work_bytes(const BackendImpl* self, size_t max_rows, size_t max_cols) {
  return static_cast<const Table*>(self->impl)->prepare_act ? kernels::prepare_act_bytes(max_rows, max_cols) : 0;
}

Status copy(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
  return Status::kOk;
}
Status zero(void* dst, size_t bytes) {
  std::memset(dst, 0, bytes);
  return Status::kOk;
}

struct CpuBackends {
  static constexpr size_t kMax = 8;
  BackendImpl b[kMax];
  char names[kMax][32];
  size_t n = 0;
  const BackendImpl* best = nullptr;
};

void fill(CpuBackends* c) {
  const Table* tables[CpuBackends::kMax];
  c->n = kernels::available(tables, CpuBackends::kMax);
  for (size_t i = 0; i < c->n; ++i) {
    std::snprintf(c->names[i], sizeof c->names[i], "cpu-%s", tables[i]->isa);
    c->b[i] = BackendImpl{.name = c->names[i],
                          .kind = Backend::kCpu,
                          .ops = &kCpuOps,
                          .impl = tables[i],
                          .place_weights = place_in_place,
                          .work_bytes = work_bytes,
                          .upload = copy,
                          .download = copy,
                          .copy = copy,
                          .zero = zero,
                          .device = nullptr};
    if (tables[i] == &kernels::active()) c->best = &c->b[i];
  }
}

// Filled once, in place (the entries point at their own names).
const CpuBackends& cpu() {
  static CpuBackends all;
  static const bool filled = (fill(&all), true);
  (void)filled;
  return all;
}

}  // namespace

size_t cpu_backends(const BackendImpl** out, size_t max) {
  const CpuBackends& c = cpu();
  size_t n = 0;
  for (; n < c.n && n < max; ++n) out[n] = &c.b[n];
  return n;
}

const BackendImpl* cpu_backend() { return cpu().best; }

}  // namespace rill
