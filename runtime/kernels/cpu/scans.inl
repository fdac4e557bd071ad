// The recurrences (Mamba-1's selective scan, S4D, Mamba-2's SSD, the wkv family's matrix state), written once over a
// vector type V and included by each kernel file (AVX2, AVX-512, NEON) inside its own anonymous
// namespace, with V defined there: V::R a register of V::W floats, and
// load/store/set1/mul/fmadd/fnmadd/zero/sum/add/sub/div/exp.
//
// Each state row stays in L1 (or registers) while the tokens of a block pass over it, so a prefill chunk
// reads the state once instead of once per token. Per token the arithmetic is the same whatever T is,
// so a prefill leaves the bits a sequence of steps leaves. Shapes whose state rows are not a multiple
// of V::W take the scalar reference per token (also the same for every T).

// Tokens per block: their decays (SSD) are computed once per head and block.
constexpr size_t kScanBlock = 16;

// S [H, P, N]; token t: x [H*P], B, C [G, N] at x, B, C + t * ldx; dt [T, H]; y [T, H*P].
template <class V>
void ssd_scan_v(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt, const float* A,
                const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G, size_t h0, size_t h1) {
  const size_t E = H * P;
  if (N % V::W != 0) {
    for (size_t t = 0; t < T; ++t)
      mamba2_scan_step(S, x + t * ldx, B + t * ldx, C + t * ldx, dt + t * H, A, D, y + t * E, H, P, N, G, h0, h1);
    return;
  }
  const size_t hpg = H / G;
  for (size_t t0 = 0; t0 < T; t0 += kScanBlock) {
    const size_t nt = T - t0 < kScanBlock ? T - t0 : kScanBlock;
    for (size_t h = h0; h < h1; ++h) {
      float decay[kScanBlock];
      for (size_t i = 0; i < nt; ++i) decay[i] = std::exp(dt[(t0 + i) * H + h] * A[h]);
      const size_t g = h / hpg;
      for (size_t p = 0; p < P; ++p) {
        const size_t c = h * P + p;
        float* s = S + c * N;
        for (size_t i = 0; i < nt; ++i) {
          const size_t t = t0 + i;
          const float* xt = x + t * ldx;
          const float* Bt = B + t * ldx + g * N;
          const float* Ct = C + t * ldx + g * N;
          const typename V::R a = V::set1(decay[i]), dtx = V::set1(dt[t * H + h] * xt[c]);
          typename V::R acc = V::zero();
          for (size_t n = 0; n < N; n += V::W) {
            const typename V::R sn = V::fmadd(a, V::load(s + n), V::mul(dtx, V::load(Bt + n)));
            V::store(s + n, sn);
            acc = V::fmadd(sn, V::load(Ct + n), acc);
          }
          y[t * E + c] = V::sum(acc) + D[c] * xt[c];
        }
      }
    }
  }
}

// The wkv recurrence (kernels.h, WkvScan) for one mode, kDelta (a, b given) and kFirst (read_first), on
// R value rows of one head at a time: the token's key-side vectors are loaded once for the R rows. Each
// row's arithmetic is the same whatever R is (the same operations in the same order), so the bits do not
// depend on how rows are grouped.
template <class V, bool kDelta, bool kFirst, size_t R>
inline void wkv_rows(float* const* row, const WkvIo& io, size_t o, size_t vo, size_t K) {
  using Reg = typename V::R;
  Reg sab[R], vi[R], acc[R];
  for (size_t q = 0; q < R; ++q) {
    sab[q] = V::zero();
    vi[q] = V::set1(io.v[vo + q]);
    acc[q] = V::zero();
  }
  if constexpr (kDelta) {
    Reg sa[R];
    for (size_t q = 0; q < R; ++q) sa[q] = V::zero();
    for (size_t j = 0; j < K; j += V::W) {
      const Reg aj = V::load(io.a + o + j);
      for (size_t q = 0; q < R; ++q) sa[q] = V::fmadd(V::load(row[q] + j), aj, sa[q]);
    }
    for (size_t q = 0; q < R; ++q) sab[q] = V::set1(V::sum(sa[q]));
  }
  for (size_t j = 0; j < K; j += V::W) {
    const Reg wj = V::load(io.w + o + j), kj = V::load(io.k + o + j), rj = V::load(io.r + o + j);
    Reg bj = V::zero();
    if constexpr (kDelta) bj = V::load(io.b + o + j);
    for (size_t q = 0; q < R; ++q) {
      const Reg old = V::load(row[q] + j);
      if constexpr (kFirst) acc[q] = V::fmadd(old, rj, acc[q]);
      Reg sj = V::mul(old, wj);
      if constexpr (kDelta) sj = V::fmadd(sab[q], bj, sj);
      sj = V::fmadd(vi[q], kj, sj);
      V::store(row[q] + j, sj);
      if constexpr (!kFirst) acc[q] = V::fmadd(sj, rj, acc[q]);
    }
  }
  for (size_t q = 0; q < R; ++q) io.y[vo + q] = V::sum(acc[q]);
}

template <class V, bool kDelta, bool kFirst>
void wkv_scan_mode(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t Vd, size_t h0, size_t h1) {
  // Value rows per pass: 4 over a prefill's tokens; one in a step, where the state streams once and a
  // single stream of rows measured faster (RetNet 1.3B q8 decode: 19.5 against 16.6 tokens/s).
  constexpr size_t R = 4;
  const size_t lk = H * K, lv = H * Vd, rows_at_once = T > 1 ? R : 1;
  // Head by head and block by block: R state rows (R x K) and the block's vectors stay in L1.
  for (size_t h = h0; h < h1; ++h)
    for (size_t t0 = 0; t0 < T; t0 += kScanBlock) {
      const size_t t1 = T - t0 < kScanBlock ? T : t0 + kScanBlock;
      size_t i = 0;
      for (; rows_at_once == R && i + R <= Vd; i += R) {
        float* row[R];
        for (size_t q = 0; q < R; ++q) row[q] = S + (h * Vd + i + q) * K;  // S[h][i + q][:], over keys j
        for (size_t t = t0; t < t1; ++t) wkv_rows<V, kDelta, kFirst, R>(row, io, t * lk + h * K, t * lv + h * Vd + i, K);
      }
      for (; i < Vd; ++i) {
        float* row[1] = {S + (h * Vd + i) * K};
        for (size_t t = t0; t < t1; ++t) wkv_rows<V, kDelta, kFirst, 1>(row, io, t * lk + h * K, t * lv + h * Vd + i, K);
      }
    }
}

// S [H, Vd, K]; key-side vectors [T, H*K], v and y [T, H*Vd].
template <class V>
void wkv_scan_v(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t Vd, bool read_first, size_t h0,
                size_t h1) {
  if (K % V::W != 0) {
    for (size_t t = 0; t < T; ++t) wkv_step(S, wkv_at(io, t, H * K, H * Vd), H, K, Vd, read_first, h0, h1);
    return;
  }
  const bool delta = io.a != nullptr;
  if (delta && !read_first) wkv_scan_mode<V, true, false>(S, io, T, H, K, Vd, h0, h1);
  else if (delta) wkv_scan_mode<V, true, true>(S, io, T, H, K, Vd, h0, h1);
  else if (read_first) wkv_scan_mode<V, false, true>(S, io, T, H, K, Vd, h0, h1);
  else wkv_scan_mode<V, false, false>(S, io, T, H, K, Vd, h0, h1);
}

// Mamba-1 selective-scan step (kernels.h, Mamba1Scan): V::W channels at a time over every state index,
// the decay exp(dt A) by V::exp; the channel tail in scalar form with std::exp.
template <class V>
void mamba1_scan_v(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                   const float* D, const float* z, float* y, size_t E, size_t N, size_t c0, size_t c1) {
  const size_t Ev = c1 / V::W * V::W;  // c0 is a multiple of 16, so of V::W; c1 too unless it is E
  for (size_t c = c0; c < Ev; c += V::W) {
    const typename V::R dtv = V::load(dt + c), xv = V::load(x + c);
    const typename V::R dtx = V::mul(dtv, xv);
    typename V::R acc = V::mul(V::load(D + c), xv);
    for (size_t n = 0; n < N; ++n) {
      float* sp = s + n * E + c;
      const typename V::R a = V::exp(V::mul(dtv, V::load(A + n * E + c)));
      const typename V::R v = V::fmadd(a, V::load(sp), V::mul(dtx, V::set1(B[n])));
      V::store(sp, v);
      acc = V::fmadd(v, V::set1(C[n]), acc);
    }
    const typename V::R zv = V::load(z + c);
    const typename V::R sig = V::div(V::set1(1.f), V::add(V::set1(1.f), V::exp(V::sub(V::zero(), zv))));
    V::store(y + c, V::mul(acc, V::mul(zv, sig)));
  }
  for (size_t c = Ev > c0 ? Ev : c0; c < c1; ++c) {
    float acc = D[c] * x[c];
    for (size_t n = 0; n < N; ++n) {
      float* sp = s + n * E + c;
      const float v = std::exp(dt[c] * A[n * E + c]) * *sp + dt[c] * B[n] * x[c];
      *sp = v;
      acc += v * C[n];
    }
    y[c] = acc * (z[c] / (1.f + std::exp(-z[c])));
  }
}

// S4D step (kernels.h, S4dStep): V::W channels at a time, every mode, the complex update and the
// read-out in FMA form (the same products as s4d_step__ref, rounded once per FMA); tail in scalar form.
template <class V>
void s4d_step_v(float* s, const float* A, const float* C, const float* D, const float* u, float* y, size_t H,
                size_t M) {
  const size_t Hv = H / V::W * V::W;
  for (size_t h = 0; h < Hv; h += V::W) {
    const typename V::R uv = V::load(u + h);
    typename V::R acc = V::zero();
    for (size_t m = 0; m < M; ++m) {
      const size_t re = m * 2 * H + h, im = re + H;
      const typename V::R sr = V::load(s + re), si = V::load(s + im);
      const typename V::R ar = V::load(A + re), ai = V::load(A + im);
      const typename V::R r = V::fmadd(ar, sr, V::fnmadd(ai, si, uv));  // ar sr - ai si + u
      const typename V::R i = V::fmadd(ar, si, V::mul(ai, sr));         // ar si + ai sr
      V::store(s + re, r);
      V::store(s + im, i);
      acc = V::fmadd(V::load(C + re), r, V::fnmadd(V::load(C + im), i, acc));
    }
    V::store(y + h, V::fmadd(V::set1(2.f), acc, V::mul(V::load(D + h), uv)));
  }
  for (size_t h = Hv; h < H; ++h) {
    float acc = 0.f;
    for (size_t m = 0; m < M; ++m) {
      const size_t re = m * 2 * H + h, im = re + H;
      const float r = A[re] * s[re] - A[im] * s[im] + u[h], i = A[re] * s[im] + A[im] * s[re];
      s[re] = r;
      s[im] = i;
      acc += C[re] * r - C[im] * i;
    }
    y[h] = 2.f * acc + D[h] * u[h];
  }
}
