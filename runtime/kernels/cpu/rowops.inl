// Activations and the row ops built on them (depthwise conv + SiLU, gated RMSNorm, LayerNorm,
// attention), written once over a vector type V and included by each kernel file (AVX2, AVX-512,
// NEON) inside its own anonymous namespace, after V (see scans.inl), which also gives max, abs,
// neg_select (x < 0 ? a : b) and load_h.
//
// Every element goes through the vector code, tails included (through a V::W buffer): an element's
// value never depends on where it falls in the array, so n rows in one call give the bits of n calls.

template <class V>
inline typename V::R sigmoid_v(typename V::R x) {
  const typename V::R one = V::set1(1.f);
  return V::div(one, V::add(one, V::exp(V::sub(V::zero(), x))));
}

template <class V>
inline typename V::R act1(Act kind, typename V::R x) {
  switch (kind) {
    case Act::kTanh: {  // 1 - 2 / (e^2x + 1): e^2x held finite by exp's clamp, so +-1 at the ends
      const typename V::R one = V::set1(1.f);
      return V::sub(one, V::div(V::set1(2.f), V::add(V::exp(V::add(x, x)), one)));
    }
    case Act::kSigmoid:
      return sigmoid_v<V>(x);
    case Act::kReluSq: {
      const typename V::R r = V::max(x, V::zero());
      return V::mul(r, r);
    }
    case Act::kRwkv7Decay:  // exp(-exp(-1/2) sigmoid(x))
      return V::exp(V::mul(V::set1(-0.6065306597126334f), sigmoid_v<V>(x)));
    case Act::kSilu:
      return V::mul(x, sigmoid_v<V>(x));
    case Act::kExpNegExp:  // exp's clamp keeps e^x finite, so the result is at least e^-87.3, never 0
      return V::exp(V::sub(V::zero(), V::exp(x)));
    case Act::kGeluErf: {  // x/2 (1 + erf(x / sqrt 2)), 1 + erf(z) = erfc(-z)
      // erfc(a) for a = |z| >= 0 by Numerical Recipes' fit t exp(-a^2 + P(t)), t = 1 / (1 + a/2),
      // fractional error < 1.2e-7 everywhere; 1 + erf(z) is erfc(a) for z < 0 and 2 - erfc(a) else.
      const typename V::R z = V::mul(x, V::set1(0.7071067811865476f)), a = V::abs(z);
      const typename V::R t = V::div(V::set1(1.f), V::fmadd(V::set1(0.5f), a, V::set1(1.f)));
      constexpr float kP[] = {-0.82215223f, 1.48851587f,  -1.13520398f, 0.27886807f, -0.18628806f,
                              0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};
      typename V::R p = V::set1(0.17087277f);
      for (float c : kP) p = V::fmadd(p, t, V::set1(c));
      const typename V::R e = V::mul(t, V::exp(V::fnmadd(a, a, p)));
      return V::mul(V::mul(V::set1(0.5f), x), V::neg_select(z, e, V::sub(V::set1(2.f), e)));
    }
    case Act::kSoftplus: {
      // max(x, 0) + log1p(e^-|x|); log1p(u) for u in (0, 1] as 2 atanh(s), s = u / (2 + u) <= 1/3, by
      // its series to s^15 (the next term is below 2e-9 relative). Above 20 the log1p term is below
      // half an ulp of x, so x comes back, as PyTorch's threshold gives.
      const typename V::R u = V::exp(V::sub(V::zero(), V::abs(x)));
      const typename V::R s = V::div(u, V::add(V::set1(2.f), u)), s2 = V::mul(s, s);
      typename V::R p = V::set1(1.f / 15);
      constexpr float kInvOdd[] = {1.f / 13, 1.f / 11, 1.f / 9, 1.f / 7, 1.f / 5, 1.f / 3, 1.f};
      for (float c : kInvOdd) p = V::fmadd(p, s2, V::set1(c));
      return V::fmadd(V::add(s, s), p, V::max(x, V::zero()));
    }
    case Act::kGeluTanh: {  // x/2 (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
      const typename V::R x3 = V::mul(V::mul(x, x), x);
      const typename V::R u2 = V::mul(V::set1(2.f * 0.7978845608028654f), V::fmadd(V::set1(0.044715f), x3, x));
      return V::mul(x, sigmoid_v<V>(u2));
    }
    default:
      return x;
  }
}

// e^x in place (kernels.h, VecExp): V::exp on every element, the tail through a buffer.
template <class V>
void exp_v(float* y, size_t n) {
  size_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(y + i, V::exp(V::load(y + i)));
  if (i < n) {
    float buf[V::W] = {};
    for (size_t j = i; j < n; ++j) buf[j - i] = y[j];
    V::store(buf, V::exp(V::load(buf)));
    for (size_t j = i; j < n; ++j) y[j] = buf[j - i];
  }
}

template <class V>
void act_v(Act kind, float* y, size_t n) {
  size_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(y + i, act1<V>(kind, V::load(y + i)));
  if (i < n) {
    float buf[V::W] = {};
    for (size_t j = i; j < n; ++j) buf[j - i] = y[j];
    V::store(buf, act1<V>(kind, V::load(buf)));
    for (size_t j = i; j < n; ++j) y[j] = buf[j - i];
  }
}

// One whole block of V::W channels of conv_silu_v over T tokens, with the block's weights and history in
// registers: the history is read and written once per call, not shifted in memory per token. KC: the
// kernel size K as a constant (registers, unrolled), or 0 for any K up to kConvMaxK. The same operations
// in the same order as the general loop below, so the same bits.
constexpr size_t kConvMaxK = 8;
template <class V, size_t KC>
inline void conv_block(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                       size_t C, size_t Kr, bool silu, size_t c) {
  using Reg = typename V::R;
  const size_t K = KC ? KC : Kr;
  Reg wk[KC ? KC : kConvMaxK], h[KC ? KC : kConvMaxK];
  for (size_t k = 0; k < K; ++k) wk[k] = V::load(w + k * C + c);
  for (size_t k = 0; k + 1 < K; ++k) h[k] = V::load(hist + k * C + c);
  const Reg bias = b ? V::load(b + c) : V::zero();
  for (size_t t = 0; t < T; ++t) {
    const Reg xv = V::load(X + t * ldx + c);
    Reg acc = V::fmadd(wk[K - 1], xv, bias);
    for (size_t k = 0; k + 1 < K; ++k) acc = V::fmadd(wk[k], h[k], acc);
    V::store(Y + t * C + c, silu ? act1<V>(Act::kSilu, acc) : acc);
    for (size_t k = 0; k + 2 < K; ++k) h[k] = h[k + 1];
    if (K >= 2) h[K - 2] = xv;
  }
  for (size_t k = 0; k + 1 < K; ++k) V::store(hist + k * C + c, h[k]);
}

// Depthwise causal conv + SiLU over T tokens of one stream (conv1d_step_silu's math per token):
// hist [K-1, C] oldest first; w [K, C]; b [C] or null; token t's input at X + t * ldx, output Y [T, C];
// channels [c0, c1) only (c0 a multiple of 16: the blocks fall where they fall for the whole range).
template <class V>
void conv_silu_v(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                 size_t C, size_t K, bool silu, size_t c0, size_t c1) {
  float xb[V::W], yb[V::W], hb[V::W];
  for (size_t c = c0; c < c1; c += V::W) {
    const size_t m = c1 - c < V::W ? c1 - c : V::W;  // channels in this block (a tail goes through buffers)
    if (m == V::W && K >= 1 && K <= kConvMaxK) {
      if (K == 4) conv_block<V, 4>(hist, w, b, X, ldx, Y, T, C, K, silu, c);
      else conv_block<V, 0>(hist, w, b, X, ldx, Y, T, C, K, silu, c);
      continue;
    }
    auto load = [&](const float* p, float* buf) -> typename V::R {
      if (m == V::W) return V::load(p);
      for (size_t j = 0; j < V::W; ++j) buf[j] = j < m ? p[j] : 0.f;
      return V::load(buf);
    };
    const typename V::R bias = b ? load(b + c, yb) : V::zero();
    for (size_t t = 0; t < T; ++t) {
      const float* x = X + t * ldx + c;
      const typename V::R xv = load(x, xb);
      typename V::R acc = V::fmadd(load(w + (K - 1) * C + c, yb), xv, bias);
      for (size_t k = 0; k + 1 < K; ++k) acc = V::fmadd(load(w + k * C + c, yb), load(hist + k * C + c, hb), acc);
      const typename V::R out = silu ? act1<V>(Act::kSilu, acc) : acc;
      if (m == V::W) {
        V::store(Y + t * C + c, out);
      } else {
        V::store(yb, out);
        for (size_t j = 0; j < m; ++j) Y[t * C + c + j] = yb[j];
      }
      for (size_t k = 0; k + 2 < K; ++k)  // shift the block's history, x in last
        for (size_t j = 0; j < m; ++j) hist[k * C + c + j] = hist[(k + 1) * C + c + j];
      if (K >= 2)
        for (size_t j = 0; j < m; ++j) hist[(K - 2) * C + c + j] = x[j];
    }
  }
}

// Mamba-2's gated RMSNorm over n rows (gated_rmsnorm's math): y = y silu(z), then per group of E/G.
template <class V>
void gated_rmsnorm_v(float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G, float eps) {
  const size_t gs = E / G;
  if (gs % V::W != 0) {
    for (size_t i = 0; i < n; ++i) gated_rmsnorm(Y + i * E, Z + i * ldz, w, E, G, eps);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    float* y = Y + i * E;
    const float* z = Z + i * ldz;
    for (size_t c = 0; c < E; c += V::W)
      V::store(y + c, V::mul(V::load(y + c), act1<V>(Act::kSilu, V::load(z + c))));
    for (size_t g = 0; g < G; ++g) {
      float* yg = y + g * gs;
      typename V::R ss = V::zero();
      for (size_t c = 0; c < gs; c += V::W) ss = V::fmadd(V::load(yg + c), V::load(yg + c), ss);
      const typename V::R inv = V::set1(1.f / std::sqrt(V::sum(ss) / static_cast<float>(gs) + eps));
      for (size_t c = 0; c < gs; c += V::W) V::store(yg + c, V::mul(V::mul(V::load(yg + c), inv), V::load(w + g * gs + c)));
    }
  }
}

// LayerNorm over n rows of d (layernorm's math: biased variance, two passes).
template <class V>
void layernorm_v(const float* X, const float* w, const float* b, float* Y, size_t n, size_t d, float eps) {
  if (d % V::W != 0) {
    for (size_t i = 0; i < n; ++i) layernorm(X + i * d, w, b, Y + i * d, d, eps);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const float* x = X + i * d;
    float* y = Y + i * d;
    typename V::R s = V::zero();
    for (size_t c = 0; c < d; c += V::W) s = V::add(s, V::load(x + c));
    const typename V::R mu = V::set1(V::sum(s) / static_cast<float>(d));
    typename V::R var = V::zero();
    for (size_t c = 0; c < d; c += V::W) {
      const typename V::R e = V::sub(V::load(x + c), mu);
      var = V::fmadd(e, e, var);
    }
    const typename V::R inv = V::set1(1.f / std::sqrt(V::sum(var) / static_cast<float>(d) + eps));
    for (size_t c = 0; c < d; c += V::W)
      V::store(y + c, V::fmadd(V::mul(V::sub(V::load(x + c), mu), inv), V::load(w + c), V::load(b + c)));
  }
}

// Attention of G heads sharing one key/value head (kernels.h, AttendGroup). Each key or value slot is
// loaded (and widened from f16) once for up to kHeads heads; D % V::W channels go through the scalar
// tail. Scores in f32, softmax with the library exp, weighted sums in vectors.
template <class V>
void attend_group_v(const void* K, const void* Vv, bool f16, size_t stride, size_t n, const float* Q, size_t G,
                    size_t D, float scale, float* scores, size_t ldsc, float* Y) {
  constexpr size_t kHeads = 8;
  const size_t Dv = D / V::W * V::W;
  auto load = [&](const void* base, size_t s, size_t j) -> typename V::R {
    return f16 ? V::load_h(static_cast<const uint16_t*>(base) + s * stride + j)
               : V::load(static_cast<const float*>(base) + s * stride + j);
  };
  auto scalar = [&](const void* base, size_t s, size_t j) {
    return f16 ? f16_to_f32(static_cast<const uint16_t*>(base)[s * stride + j])
               : static_cast<const float*>(base)[s * stride + j];
  };
  for (size_t h0 = 0; h0 < G; h0 += kHeads) {
    const size_t g = G - h0 < kHeads ? G - h0 : kHeads;
    for (size_t s = 0; s < n; ++s) {  // scores
      typename V::R acc[kHeads];
      for (size_t h = 0; h < g; ++h) acc[h] = V::zero();
      for (size_t j = 0; j < Dv; j += V::W) {
        const typename V::R k = load(K, s, j);
        for (size_t h = 0; h < g; ++h) acc[h] = V::fmadd(V::load(Q + (h0 + h) * D + j), k, acc[h]);
      }
      for (size_t h = 0; h < g; ++h) {
        float dot = V::sum(acc[h]);
        for (size_t j = Dv; j < D; ++j) dot += Q[(h0 + h) * D + j] * scalar(K, s, j);
        scores[(h0 + h) * ldsc + s] = dot * scale;
      }
    }
    for (size_t h = 0; h < g; ++h) {  // softmax, normalised in place
      float* sc = scores + (h0 + h) * ldsc;
      float mx = -INFINITY, sum = 0.f;
      for (size_t s = 0; s < n; ++s) mx = sc[s] > mx ? sc[s] : mx;
      for (size_t s = 0; s < n; ++s) sum += (sc[s] = std::exp(sc[s] - mx));
      const float inv = 1.f / sum;
      for (size_t s = 0; s < n; ++s) sc[s] *= inv;
    }
    for (size_t j = 0; j < Dv; j += V::W) {  // y = sum_s p_s v_s, a block of channels at a time
      typename V::R acc[kHeads];
      for (size_t h = 0; h < g; ++h) acc[h] = V::zero();
      for (size_t s = 0; s < n; ++s) {
        const typename V::R v = load(Vv, s, j);
        for (size_t h = 0; h < g; ++h) acc[h] = V::fmadd(V::set1(scores[(h0 + h) * ldsc + s]), v, acc[h]);
      }
      for (size_t h = 0; h < g; ++h) V::store(Y + (h0 + h) * D + j, acc[h]);
    }
    for (size_t h = 0; h < g; ++h)
      for (size_t j = Dv; j < D; ++j) {
        float y = 0.f;
        for (size_t s = 0; s < n; ++s) y += scores[(h0 + h) * ldsc + s] * scalar(Vv, s, j);
        Y[(h0 + h) * D + j] = y;
      }
  }
}
