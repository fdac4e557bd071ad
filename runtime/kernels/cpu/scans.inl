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

namespace ssdc {
template <class V>
void scan(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt, const float* A,
          const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G, float* work, size_t h0,
          size_t h1);
}

// S [H, P, N]; token t: x [H*P], B, C [G, N] at x, B, C + t * ldx; dt [T, H]; y [T, H*P]. With a workspace,
// runs of kSsdChunk tokens or more take the chunked form (ssdc below).
template <class V>
void ssd_scan_v(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt, const float* A,
                const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G, float* work, size_t h0,
                size_t h1) {
  const size_t E = H * P;
  if (N % V::W != 0) {
    for (size_t t = 0; t < T; ++t)
      mamba2_scan_step(S, x + t * ldx, B + t * ldx, C + t * ldx, dt + t * H, A, D, y + t * E, H, P, N, G, h0, h1);
    return;
  }
  if (work && T >= kSsdChunk) return ssdc::scan<V>(S, x, B, C, ldx, dt, A, D, y, T, H, P, N, G, work, h0, h1);
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

namespace wkvc {
template <class V, bool kDelta, bool kFirst>
void scan(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t Vd, float* work, size_t h0, size_t h1);
}

// S [H, Vd, K]; key-side vectors [T, H*K], v and y [T, H*Vd]. With a workspace, runs of kWkvChunk tokens or
// more take the chunked form (wkvc below).
template <class V>
void wkv_scan_v(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t Vd, bool read_first, float* work,
                size_t h0, size_t h1) {
  if (K % V::W != 0) {
    for (size_t t = 0; t < T; ++t) wkv_step(S, wkv_at(io, t, H * K, H * Vd), H, K, Vd, read_first, h0, h1);
    return;
  }
  const bool delta = io.a != nullptr;
  if (work && T >= kWkvChunk) {
    if (delta && !read_first) wkvc::scan<V, true, false>(S, io, T, H, K, Vd, work, h0, h1);
    else if (delta) wkvc::scan<V, true, true>(S, io, T, H, K, Vd, work, h0, h1);
    else if (read_first) wkvc::scan<V, false, true>(S, io, T, H, K, Vd, work, h0, h1);
    else wkvc::scan<V, false, false>(S, io, T, H, K, Vd, work, h0, h1);
    return;
  }
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

// ---- the wkv recurrence in chunks (kernels.h: WkvScan with a workspace)
//
// Over a chunk of c <= kWkvChunk tokens from the state S0, per head, with D(t, s) = w_{s+1} ... w_t the decays
// between tokens s < t (per key channel; D(t, t) = 1) and Λ_t = D(t, -1) = w_0 ... w_t:
//   u_t = S_{t-1} a_t = S0 (Λ_{t-1} a_t) + Σ_{s<t}  [u_s (b_s · D(t-1,s) a_t) + v_s (k_s · D(t-1,s) a_t)]
//   y_t = S_t r_t     = S0 (Λ_t r_t)     + Σ_{s<=t} [u_s (b_s · D(t,s) r_t)   + v_s (k_s · D(t,s) r_t)]
//   S_c = S0 Λ_{c-1} + Σ_s [u_s (b_s D(c-1,s))ᵀ + v_s (k_s D(c-1,s))ᵀ]
// (u only with the delta term; read_first: y_t as u_t, with r_t for a_t). The products with S0 and the new
// state are matrix products, tiled over rows, tokens and key channels in registers; the rest is c² dot
// products of K and c² row updates of V. The decays are products of the w's, as the recurrence forms them:
// no logarithm or division, so nothing overflows that the recurrence does not. Rounding differs from the
// recurrence's (sums in another order): same values within f32 rounding, not the same bits.

namespace wkvc {

// Workspace of one head, kernels.h: wkv_chunk_floats(K, V).
struct Work {
  float *At, *Rt, *Bh, *Kh;  // [C, K]: Λ_{t-1} a_t, Λ_t r_t (Λ_{t-1} r_t with read_first), b_s D(c-1,s), k_s D(c-1,s)
  float *lam, *d;            // [K]: Λ, a running decay
  float *ab, *ak, *rb, *rk;  // [C, C]: [t][s] the scores above
  float* U;                  // [C, V]: u_t
  Work(float* p, size_t K) {
    constexpr size_t C = kWkvChunk;
    At = p, Rt = At + C * K, Bh = Rt + C * K, Kh = Bh + C * K, lam = Kh + C * K, d = lam + K;
    ab = d + K, ak = ab + C * C, rb = ak + C * C, rk = rb + C * C, U = rk + C * C;
  }
};

// O[x][(t + tt) ldo[x] + i + q] = S0[i + q] · X[x][t + tt], for NR rows, NT tokens, NX vectors per token
// (token t's vectors ldx floats apart).
template <class V, size_t NR, size_t NT, size_t NX>
inline void s0_tile(const float* S0, size_t K, const float* const* X, size_t ldx, float* const* O, const size_t* ldo,
                    size_t i, size_t t) {
  using Reg = typename V::R;
  constexpr size_t M = NX * NT * NR;
  Reg acc[M];  // [x][tt][q]
  for (size_t k = 0; k < M; ++k) acc[k] = V::zero();
  for (size_t j = 0; j < K; j += V::W) {
    Reg s[NR];
    for (size_t q = 0; q < NR; ++q) s[q] = V::load(S0 + (i + q) * K + j);
    for (size_t x = 0; x < NX; ++x)
      for (size_t tt = 0; tt < NT; ++tt) {
        const Reg xv = V::load(X[x] + (t + tt) * ldx + j);
        Reg* a = acc + (x * NT + tt) * NR;
        for (size_t q = 0; q < NR; ++q) a[q] = V::fmadd(s[q], xv, a[q]);
      }
  }
  // The sums: V::W accumulators at a time by one transposing reduction (lane k of V::sums is accumulator
  // k's sum), or one by one for the small tail tiles.
  float sum[M];
  if constexpr (M % V::W == 0) {
    for (size_t k = 0; k < M; k += V::W) V::store(sum + k, V::sums(acc + k));
  } else {
    for (size_t k = 0; k < M; ++k) sum[k] = V::sum(acc[k]);
  }
  for (size_t x = 0; x < NX; ++x)
    for (size_t tt = 0; tt < NT; ++tt)
      for (size_t q = 0; q < NR; ++q) O[x][(t + tt) * ldo[x] + i + q] = sum[(x * NT + tt) * NR + q];
}

template <class V, size_t NX>
void s0_products(const float* S0, size_t K, size_t Vd, size_t c, const float* const* X, size_t ldx, float* const* O,
                 const size_t* ldo) {
  constexpr size_t NR = 4, NT = (V::W == 8 ? 2 : 4) / NX;  // 16 vector registers on AVX2, 32 elsewhere
  size_t i = 0;
  for (; i + NR <= Vd; i += NR) {
    size_t t = 0;
    for (; t + NT <= c; t += NT) s0_tile<V, NR, NT, NX>(S0, K, X, ldx, O, ldo, i, t);
    for (; t < c; ++t) s0_tile<V, NR, 1, NX>(S0, K, X, ldx, O, ldo, i, t);
  }
  for (; i < Vd; ++i)
    for (size_t t = 0; t < c; ++t) s0_tile<V, 1, 1, NX>(S0, K, X, ldx, O, ldo, i, t);
}

// S[i + q][j + jj W] = S[..] lam + Σ_s v_s[i + q] Kh[s] (+ U[s][i + q] Bh[s]), NR rows, NJ vectors of keys.
template <class V, bool kDelta, size_t NR, size_t NJ>
inline void state_tile(float* S, size_t K, const Work& w, const float* v, size_t lv, const float* U, size_t Vd,
                       size_t c, size_t i, size_t j) {
  using Reg = typename V::R;
  Reg acc[NR][NJ];
  for (size_t jj = 0; jj < NJ; ++jj) {
    const Reg l = V::load(w.lam + j + jj * V::W);
    for (size_t q = 0; q < NR; ++q) acc[q][jj] = V::mul(V::load(S + (i + q) * K + j + jj * V::W), l);
  }
  for (size_t s = 0; s < c; ++s) {
    Reg kh[NJ], bh[NJ];
    for (size_t jj = 0; jj < NJ; ++jj) {
      kh[jj] = V::load(w.Kh + s * K + j + jj * V::W);
      if constexpr (kDelta) bh[jj] = V::load(w.Bh + s * K + j + jj * V::W);
    }
    for (size_t q = 0; q < NR; ++q) {
      const Reg vq = V::set1(v[s * lv + i + q]);
      for (size_t jj = 0; jj < NJ; ++jj) acc[q][jj] = V::fmadd(vq, kh[jj], acc[q][jj]);
      if constexpr (kDelta) {
        const Reg uq = V::set1(U[s * Vd + i + q]);
        for (size_t jj = 0; jj < NJ; ++jj) acc[q][jj] = V::fmadd(uq, bh[jj], acc[q][jj]);
      }
    }
  }
  for (size_t q = 0; q < NR; ++q)
    for (size_t jj = 0; jj < NJ; ++jj) V::store(S + (i + q) * K + j + jj * V::W, acc[q][jj]);
}

template <class V, bool kDelta, size_t NR>
void state_rows(float* S, size_t K, const Work& w, const float* v, size_t lv, const float* U, size_t Vd, size_t c,
                size_t i) {
  constexpr size_t NJ = V::W == 8 ? 2 : 4;
  size_t j = 0;
  for (; j + NJ * V::W <= K; j += NJ * V::W) state_tile<V, kDelta, NR, NJ>(S, K, w, v, lv, U, Vd, c, i, j);
  for (; j < K; j += V::W) state_tile<V, kDelta, NR, 1>(S, K, w, v, lv, U, Vd, c, i, j);
}

// y[i] += p x[i] + q z[i] over n floats.
template <class V>
inline void axpy2(float* y, float p, const float* x, float q, const float* z, size_t n) {
  size_t i = 0;
  const typename V::R pv = V::set1(p), qv = V::set1(q);
  for (; i + V::W <= n; i += V::W)
    V::store(y + i, V::fmadd(qv, V::load(z + i), V::fmadd(pv, V::load(x + i), V::load(y + i))));
  for (; i < n; ++i) y[i] += p * x[i] + q * z[i];
}

// y[i] += q z[i] over n floats.
template <class V>
inline void axpy(float* y, float q, const float* z, size_t n) {
  size_t i = 0;
  const typename V::R qv = V::set1(q);
  for (; i + V::W <= n; i += V::W) V::store(y + i, V::fmadd(qv, V::load(z + i), V::load(y + i)));
  for (; i < n; ++i) y[i] += q * z[i];
}

template <class V>
inline float dot(const float* x, const float* y, size_t K) {
  typename V::R acc = V::zero();
  for (size_t j = 0; j < K; j += V::W) acc = V::fmadd(V::load(x + j), V::load(y + j), acc);
  return V::sum(acc);
}

// One chunk of c tokens of head h from token t0: S (the head's [V, K]) is S0 on entry and S_c on return.
template <class V, bool kDelta, bool kFirst>
void chunk(float* S, const WkvIo& io, size_t t0, size_t c, size_t lk, size_t lv, size_t h, size_t K, size_t Vd,
           const Work& w) {
  using Reg = typename V::R;
  constexpr size_t C = kWkvChunk;
  const size_t o = t0 * lk + h * K;  // token t0's key-side vectors; token t0 + t's at o + t lk
  const float* vb = io.v + t0 * lv + h * Vd;
  float* yb = io.y + t0 * lv + h * Vd;
  // The decays from the chunk's start (Λ) and to its end (suffix products), and the vectors they scale.
  for (size_t j = 0; j < K; j += V::W) V::store(w.lam + j, V::set1(1.f)), V::store(w.d + j, V::set1(1.f));
  for (size_t t = 0; t < c; ++t) {
    const size_t ot = o + t * lk;
    for (size_t j = 0; j < K; j += V::W) {
      const Reg l = V::load(w.lam + j), nl = V::mul(l, V::load(io.w + ot + j));
      if constexpr (kDelta) V::store(w.At + t * K + j, V::mul(V::load(io.a + ot + j), l));
      V::store(w.Rt + t * K + j, V::mul(V::load(io.r + ot + j), kFirst ? l : nl));
      V::store(w.lam + j, nl);
    }
  }
  for (size_t s = c; s-- > 0;) {
    const size_t os = o + s * lk;
    for (size_t j = 0; j < K; j += V::W) {
      const Reg dj = V::load(w.d + j);
      V::store(w.Kh + s * K + j, V::mul(V::load(io.k + os + j), dj));
      if constexpr (kDelta) V::store(w.Bh + s * K + j, V::mul(V::load(io.b + os + j), dj));
      V::store(w.d + j, V::mul(dj, V::load(io.w + os + j)));
    }
  }
  // The scores between tokens of the chunk, with the decays between them.
  for (size_t s = 0; s < c; ++s) {
    const size_t os = o + s * lk;
    const float *ks = io.k + os, *bs = kDelta ? io.b + os : nullptr;
    if constexpr (!kFirst) {
      w.rk[s * C + s] = dot<V>(io.r + os, ks, K);
      if constexpr (kDelta) w.rb[s * C + s] = dot<V>(io.r + os, bs, K);
    }
    for (size_t j = 0; j < K; j += V::W) V::store(w.d + j, V::set1(1.f));
    for (size_t t = s + 1; t < c; ++t) {
      const size_t ot = o + t * lk;
      Reg ab = V::zero(), ak = V::zero(), rb = V::zero(), rk = V::zero();
      for (size_t j = 0; j < K; j += V::W) {
        Reg dj = V::load(w.d + j);
        const Reg kj = V::load(ks + j), rj = V::load(io.r + ot + j);
        Reg bj = V::zero();
        if constexpr (kDelta) {
          bj = V::load(bs + j);
          const Reg x = V::mul(V::load(io.a + ot + j), dj);  // D(t-1, s) a_t
          ab = V::fmadd(x, bj, ab);
          ak = V::fmadd(x, kj, ak);
        }
        if constexpr (!kFirst) dj = V::mul(dj, V::load(io.w + ot + j));  // D(t, s)
        const Reg y = V::mul(rj, dj);
        if constexpr (kDelta) rb = V::fmadd(y, bj, rb);
        rk = V::fmadd(y, kj, rk);
        if constexpr (kFirst) dj = V::mul(dj, V::load(io.w + ot + j));
        V::store(w.d + j, dj);
      }
      if constexpr (kDelta) w.ab[t * C + s] = V::sum(ab), w.ak[t * C + s] = V::sum(ak), w.rb[t * C + s] = V::sum(rb);
      w.rk[t * C + s] = V::sum(rk);
    }
  }
  // From S0: u_t's S0 (Λ_{t-1} a_t) into U, y_t's S0 (Λ_t r_t) into y.
  if constexpr (kDelta) {
    const float* X[2] = {w.At, w.Rt};
    float* O[2] = {w.U, yb};
    const size_t ld[2] = {Vd, lv};
    s0_products<V, 2>(S, K, Vd, c, X, K, O, ld);
  } else {
    const float* X[1] = {w.Rt};
    float* O[1] = {yb};
    const size_t ld[1] = {lv};
    s0_products<V, 1>(S, K, Vd, c, X, K, O, ld);
  }
  // Within the chunk: u_t in token order (each from the earlier ones), then every y_t.
  if constexpr (kDelta)
    for (size_t t = 1; t < c; ++t)
      for (size_t s = 0; s < t; ++s) axpy2<V>(w.U + t * Vd, w.ab[t * C + s], w.U + s * Vd, w.ak[t * C + s], vb + s * lv, Vd);
  for (size_t t = 0; t < c; ++t)
    for (size_t s = 0; s < (kFirst ? t : t + 1); ++s) {
      if constexpr (kDelta)
        axpy2<V>(yb + t * lv, w.rb[t * C + s], w.U + s * Vd, w.rk[t * C + s], vb + s * lv, Vd);
      else
        axpy<V>(yb + t * lv, w.rk[t * C + s], vb + s * lv, Vd);
    }
  // The state at the chunk's end.
  size_t i = 0;
  for (; i + 4 <= Vd; i += 4) state_rows<V, kDelta, 4>(S, K, w, vb, lv, w.U, Vd, c, i);
  for (; i < Vd; ++i) state_rows<V, kDelta, 1>(S, K, w, vb, lv, w.U, Vd, c, i);
}

template <class V, bool kDelta, bool kFirst>
void scan(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t Vd, float* work, size_t h0, size_t h1) {
  const size_t lk = H * K, lv = H * Vd;
  for (size_t h = h0; h < h1; ++h) {
    const Work w(work + h * wkv_chunk_floats(K, Vd), K);
    for (size_t t0 = 0; t0 < T; t0 += kWkvChunk)
      chunk<V, kDelta, kFirst>(S + h * Vd * K, io, t0, T - t0 < kWkvChunk ? T - t0 : kWkvChunk, lk, lv, h, K, Vd, w);
  }
}

}  // namespace wkvc

// ---- Mamba-2's SSD in chunks (kernels.h: Mamba2Ssd with a workspace)
//
// The chunked algorithm of the Mamba-2 paper (state space duality). The decay is one scalar per head and
// token, a_t = exp(dt_t A), and B, C are shared by the heads of a group. Over a chunk of c <= kSsdChunk
// tokens from the state S0 [P, N] of a head, with D(t, s) = a_{s+1} ... a_t (D(t, t) = 1) and
// Λ_t = a_0 ... a_t:
//   y_t = Λ_t (S0 C_t) + Σ_{s<=t} (C_t · B_s) D(t, s) dt_s x_s + D x_t
//   S_c = Λ_{c-1} S0 + Σ_s (D(c-1, s) dt_s x_s) B_sᵀ
// C_t · B_s is formed once per group and chunk, for every head of the group; S0 C_t and the new state are
// register-tiled matrix products (wkvc's s0_products for the first). The decays are products of the a's,
// as the recurrence forms them: nothing overflows that the recurrence does not. Rounding differs from the
// recurrence's: the same values within f32 rounding, not the same bits.
namespace ssdc {

// Workspace of one head, kernels.h: ssd_chunk_floats(P).
struct Work {
  float *Xh, *M, *CB;  // Xh [C, P]: (D(c-1, s) dt_s) x_s; M [C, C]: [t][s] (C_t · B_s) D(t, s) dt_s; CB [C, C]
  float *a, *lam;      // [C]: a_t, Λ_t
  Work(float* p, size_t P) {
    constexpr size_t C = kSsdChunk;
    Xh = p, M = Xh + C * P, CB = M + C * C, a = CB + C * C, lam = a + C;
  }
};

// S[i + q][j + jj W] = lam S[..] + Σ_s Xh[s][i + q] B_s[j + jj W], NR rows, NJ vectors of state.
template <class V, size_t NR, size_t NJ>
inline void state_tile(float* S, size_t N, float lam, const float* B, size_t ldx, const float* Xh, size_t P, size_t c,
                       size_t i, size_t j) {
  using Reg = typename V::R;
  Reg acc[NR][NJ];
  const Reg l = V::set1(lam);
  for (size_t q = 0; q < NR; ++q)
    for (size_t jj = 0; jj < NJ; ++jj) acc[q][jj] = V::mul(V::load(S + (i + q) * N + j + jj * V::W), l);
  for (size_t s = 0; s < c; ++s) {
    Reg b[NJ];
    for (size_t jj = 0; jj < NJ; ++jj) b[jj] = V::load(B + s * ldx + j + jj * V::W);
    for (size_t q = 0; q < NR; ++q) {
      const Reg xq = V::set1(Xh[s * P + i + q]);
      for (size_t jj = 0; jj < NJ; ++jj) acc[q][jj] = V::fmadd(xq, b[jj], acc[q][jj]);
    }
  }
  for (size_t q = 0; q < NR; ++q)
    for (size_t jj = 0; jj < NJ; ++jj) V::store(S + (i + q) * N + j + jj * V::W, acc[q][jj]);
}

template <class V, size_t NR>
void state_rows(float* S, size_t N, float lam, const float* B, size_t ldx, const float* Xh, size_t P, size_t c,
                size_t i) {
  constexpr size_t NJ = V::W == 8 ? 2 : 4;
  size_t j = 0;
  for (; j + NJ * V::W <= N; j += NJ * V::W) state_tile<V, NR, NJ>(S, N, lam, B, ldx, Xh, P, c, i, j);
  for (; j < N; j += V::W) state_tile<V, NR, 1>(S, N, lam, B, ldx, Xh, P, c, i, j);
}

// y_t[p..] = Λ_t y_t[p..] + Σ_{s<=t} M[t][s] x_s[p..] + D[p..] x_t[p..] for NB vectors at p.
template <class V, size_t NB>
inline void y_block(float* y, size_t ldy, const float* x, size_t ldx, const float* D, const Work& w, size_t t,
                    size_t p) {
  using Reg = typename V::R;
  constexpr size_t C = kSsdChunk;
  Reg acc[NB];
  const Reg l = V::set1(w.lam[t]);
  for (size_t b = 0; b < NB; ++b) acc[b] = V::mul(V::load(y + t * ldy + p + b * V::W), l);
  for (size_t s = 0; s <= t; ++s) {
    const Reg m = V::set1(w.M[t * C + s]);
    for (size_t b = 0; b < NB; ++b) acc[b] = V::fmadd(m, V::load(x + s * ldx + p + b * V::W), acc[b]);
  }
  for (size_t b = 0; b < NB; ++b)
    V::store(y + t * ldy + p + b * V::W,
             V::fmadd(V::load(D + p + b * V::W), V::load(x + t * ldx + p + b * V::W), acc[b]));
}

// One chunk of c tokens of one head: x, y at the chunk's first token and the head's first channel (rows
// ldx and ldy apart); B, C at the first token and the head's group; dt at the first token's entry of this
// head (tokens H apart); cb: the group's C_t · B_s. S (the head's [P, N]) is S0 on entry and S_c on return.
template <class V>
void chunk(float* S, const float* x, const float* B, const float* Cm, size_t ldx, const float* dt, size_t H, float A,
           const float* D, float* y, size_t ldy, size_t c, size_t P, size_t N, const float* cb, const Work& w) {
  constexpr size_t C = kSsdChunk;
  float l = 1.f;
  for (size_t t = 0; t < c; ++t) w.a[t] = std::exp(dt[t * H] * A), l *= w.a[t], w.lam[t] = l;
  float d = 1.f;  // D(c-1, s)
  for (size_t s = c; s-- > 0;) {
    const float e = d * dt[s * H];
    for (size_t p = 0; p < P; ++p) w.Xh[s * P + p] = e * x[s * ldx + p];
    d *= w.a[s];
  }
  for (size_t t = 0; t < c; ++t) {
    float dts = 1.f;  // D(t, s)
    for (size_t s = t + 1; s-- > 0;) w.M[t * C + s] = cb[t * C + s] * dts * dt[s * H], dts *= w.a[s];
  }
  // y_t = S0 C_t, then Λ_t times that plus the chunk's own tokens and the skip.
  const float* X[1] = {Cm};
  float* O[1] = {y};
  const size_t ld[1] = {ldy};
  wkvc::s0_products<V, 1>(S, N, P, c, X, ldx, O, ld);
  for (size_t t = 0; t < c; ++t) {
    size_t p = 0;
    for (; p + 4 * V::W <= P; p += 4 * V::W) y_block<V, 4>(y, ldy, x, ldx, D, w, t, p);
    for (; p + V::W <= P; p += V::W) y_block<V, 1>(y, ldy, x, ldx, D, w, t, p);
    for (; p < P; ++p) {
      float acc = w.lam[t] * y[t * ldy + p];
      for (size_t s = 0; s <= t; ++s) acc += w.M[t * C + s] * x[s * ldx + p];
      y[t * ldy + p] = acc + D[p] * x[t * ldx + p];
    }
  }
  // The state at the chunk's end.
  size_t i = 0;
  for (; i + 4 <= P; i += 4) state_rows<V, 4>(S, N, w.lam[c - 1], B, ldx, w.Xh, P, c, i);
  for (; i < P; ++i) state_rows<V, 1>(S, N, w.lam[c - 1], B, ldx, w.Xh, P, c, i);
}

template <class V>
void scan(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt, const float* A,
          const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G, float* work, size_t h0,
          size_t h1) {
  const size_t hpg = H / G, E = H * P, per = ssd_chunk_floats(P);
  for (size_t t0 = 0; t0 < T; t0 += kSsdChunk) {
    const size_t c = T - t0 < kSsdChunk ? T - t0 : kSsdChunk;
    for (size_t h = h0; h < h1; ++h) {
      const size_t g = h / hpg, first = h0 > g * hpg ? h0 : g * hpg;  // the group's first head in this range
      const float *Bg = B + t0 * ldx + g * N, *Cg = C + t0 * ldx + g * N;
      float* cb = Work(work + first * per, P).CB;  // the group's C_t · B_s, in that head's workspace
      if (h == first)
        for (size_t t = 0; t < c; ++t)
          for (size_t s = 0; s <= t; ++s) cb[t * kSsdChunk + s] = wkvc::dot<V>(Cg + t * ldx, Bg + s * ldx, N);
      chunk<V>(S + h * P * N, x + t0 * ldx + h * P, Bg, Cg, ldx, dt + t0 * H + h, H, A[h], D + h * P,
               y + t0 * E + h * P, E, c, P, N, cb, Work(work + h * per, P));
    }
  }
}

}  // namespace ssdc
