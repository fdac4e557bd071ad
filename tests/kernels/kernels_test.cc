// Every fast kernel against its scalar reference, over odd sizes and tails; f16 conversions exactly.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/ref/kernels_ref.h"
#include "content.h"
#include "quant_oracle.h"
#include "test_util.h"

using namespace rill::kernels;
using rill::Act;

namespace {
// Token counts the batched kernels are checked at: below, at and past their 8-token tile.
const size_t kTokenCounts[] = {1, 2, 5, 8, 9, 17};
constexpr size_t kMaxT = 17;

// The first 64-byte aligned byte of `buf` (sized 64 bytes over what it must hold), as an arena gives.
unsigned char* aligned64(std::vector<unsigned char>& buf) {
  return buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
}

// T rows of activations as table t's quantized kernels read them: int8 blocks prepared into `buf`
// (64-byte aligned, as an arena gives) where the table has prepare_act, the floats otherwise.
QAct prepare(const Table& t, const float* X, size_t ldx, size_t T, size_t cols, size_t group,
             std::vector<unsigned char>* buf) {
  if (!t.prepare_act) return float_act(X, ldx);
  buf->assign(prepare_act_bytes(T, cols) + 64, 0);
  unsigned char* w = aligned64(*buf);
  QAct a;
  t.prepare_act(X, ldx, T, cols, group, w, &a, 0, T);
  return a;
}

// A chunked form's state S and outputs y against the recurrence's in double (Sd, yd): each within 1e-5 of
// its largest value; and the guard values from work[used] on untouched (the kernel stays in its heads'
// workspaces).
void check_chunked(const std::vector<float>& S, const std::vector<double>& Sd, const std::vector<float>& y,
                   const std::vector<double>& yd, const std::vector<float>& work, size_t used, float guard) {
  double smax = 0, ymax = 0, ds = 0, dy = 0;
  for (double e : Sd) smax = std::max(smax, std::fabs(e));
  for (double e : yd) ymax = std::max(ymax, std::fabs(e));
  for (size_t i = 0; i < S.size(); ++i) ds = std::max(ds, std::fabs(S[i] - Sd[i]));
  for (size_t i = 0; i < y.size(); ++i) dy = std::max(dy, std::fabs(y[i] - yd[i]));
  CHECK_MESSAGE(ds <= 1e-5 * smax, "state: " << ds << " of " << smax);
  CHECK_MESSAGE(dy <= 1e-5 * ymax, "y: " << dy << " of " << ymax);
  for (size_t i = used; i < work.size(); ++i) CHECK(work[i] == guard);
}
}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("f16 <-> f32: every half value round-trips; f32 -> f16 rounds to nearest even") {
    for (uint32_t h = 0; h < 65536; ++h) {
      const float f = f16_to_f32(static_cast<uint16_t>(h));
      if (std::isnan(f)) {
        CHECK(std::isnan(f16_to_f32(f32_to_f16(f))));
        continue;
      }
      REQUIRE_MESSAGE(f32_to_f16(f) == h, "half " << h);
    }
    // Random floats: the chosen half is the nearest (ties to even) among its neighbours.
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> e(-30.f, 17.f);
    for (int i = 0; i < 200000; ++i) {
      const float x = std::ldexp(1.f + (rng() % 1000000) / 1e6f, static_cast<int>(e(rng))) * ((rng() & 1) ? 1 : -1);
      const uint16_t h = f32_to_f16(x);
      const double got = f16_to_f32(h);
      if (std::isinf(got)) {
        REQUIRE(std::fabs(x) >= 65520.f);
        continue;
      }
      for (int dlt : {-1, 1}) {
        const uint16_t n = static_cast<uint16_t>(h + dlt);
        const float nf = f16_to_f32(n);
        if (std::isnan(nf) || ((n ^ h) & 0x8000)) continue;
        REQUIRE_MESSAGE(std::fabs(got - x) <= std::fabs(static_cast<double>(nf) - x), "x=" << x);
      }
    }
  }

  TEST_CASE("matvec: every kernel table matches the reference on odd shapes") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    const Table* built[8];
    const size_t nb = compiled(built, 8);
    std::string ran, not_run;
    for (size_t i = 0; i < nb; ++i) {
      bool runs = false;
      for (size_t k = 0; k < nt; ++k) runs |= tables[k] == built[i];
      std::string& list = runs ? ran : not_run;
      if (!list.empty()) list += ' ';
      list += built[i]->isa;
    }
    rill_test::report_line("tables.txt", "kernel tables run: " + ran + " (active: " + active().isa + "); compiled but not runnable on this CPU: " +
                                  (not_run.empty() ? "none" : not_run));
    CHECK(nt >= 1);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    const size_t shapes[][2] = {{1, 1}, {3, 7}, {4, 8}, {5, 17}, {37, 40}, {80, 37}, {64, 64}, {9, 129}, {130, 255}};
    for (size_t ti = 0; ti < nt; ++ti) {
      const Table* t = tables[ti];
      for (auto& sh : shapes) {
        const size_t R = sh[0], C = sh[1];
        std::vector<float> W(R * C), x(C), y(R), yr(R);
        std::vector<uint16_t> Wh(R * C);
        for (auto& v : W) v = nd(rng);
        for (auto& v : x) v = nd(rng);
        for (size_t i = 0; i < W.size(); ++i) Wh[i] = f32_to_f16(W[i]);
        t->matvec_f32(W.data(), x.data(), y.data(), R, C);
        matvec_f32__ref(W.data(), x.data(), yr.data(), R, C);
        for (size_t r = 0; r < R; ++r) REQUIRE_MESSAGE(std::fabs(y[r] - yr[r]) <= 1e-5f * (1 + std::sqrt(float(C))),
                                                        std::string(t->isa) << " f32 " << R << "x" << C);
        t->matvec_f16(Wh.data(), x.data(), y.data(), R, C);
        matvec_f16__ref(Wh.data(), x.data(), yr.data(), R, C);
        for (size_t r = 0; r < R; ++r) REQUIRE_MESSAGE(std::fabs(y[r] - yr[r]) <= 1e-5f * (1 + std::sqrt(float(C))),
                                                        std::string(t->isa) << " f16 " << R << "x" << C);
      }
    }
  }

  TEST_CASE("no fast table leaves an entry on the scalar reference kernel") {
    // An entry that points at the reference would be "tested" against itself: every table but the
    // reference must have its own kernel in every entry (prepare_act aside: null means float inputs).
    const Table* built[8];
    const size_t nb = compiled(built, 8);
    const Table* ref = built[0];
    REQUIRE(std::string(ref->isa) == "ref");
    for (size_t i = 1; i < nb; ++i) {
      const Table& t = *built[i];
      std::string on_ref;
      auto check = [&](const char* name, const void* fast, const void* reference) {
        if (fast == reference) on_ref += std::string(on_ref.empty() ? "" : " ") + name;
      };
#define RILL_ENTRY(e) check(#e, reinterpret_cast<const void*>(+t.e.fn), reinterpret_cast<const void*>(+ref->e.fn))
      RILL_ENTRY(matvec_f32); RILL_ENTRY(matvec_f16); RILL_ENTRY(mamba1_scan); RILL_ENTRY(matvec_q8);
      RILL_ENTRY(matvec_q4); RILL_ENTRY(matmul_q8); RILL_ENTRY(matmul_q4); RILL_ENTRY(matmul_f32);
      RILL_ENTRY(matmul_f16); RILL_ENTRY(matmul_q4x16); RILL_ENTRY(matmul_q8x16); RILL_ENTRY(s4d_step);
      RILL_ENTRY(mamba2_ssd); RILL_ENTRY(wkv_scan); RILL_ENTRY(act); RILL_ENTRY(exp); RILL_ENTRY(conv_silu);
      RILL_ENTRY(gated_rmsnorm); RILL_ENTRY(layernorm); RILL_ENTRY(attend_group);
#undef RILL_ENTRY
      CHECK_MESSAGE(on_ref.empty(), t.isa << " entries on the reference kernel: " << on_ref);
    }
  }

  TEST_CASE("exp: every table's vector e^x within its stated ulps of e^x over [-87.3, 88.3]; NaN, infinities, clamp") {
    // 2^21 inputs evenly spaced in their bit patterns over both signs of the range, against e^x in
    // double rounded once. Vector tables clamp x to [-87.3, 88.3] (kernels.h): beyond, e^88.3 and
    // e^-87.3; NaN stays NaN.
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    auto ulp_of = [](double v) { return std::ldexp(1.0, std::ilogb(v) - 23); };
    std::vector<float> x, y;
    for (float lim : {88.3f, -87.3f}) {
      uint32_t top;
      std::memcpy(&top, &lim, 4);
      const uint32_t lo = lim > 0 ? 0u : 0x80000000u, n = 1u << 20;
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t bits = lo + static_cast<uint32_t>((uint64_t(top - lo) * i) / (n - 1));
        float v;
        std::memcpy(&v, &bits, 4);
        x.push_back(v);
      }
    }
    for (size_t ti = 0; ti < nt; ++ti) {
      const Table& t = *tables[ti];
      y = x;
      t.exp(y.data(), y.size());
      double worst = 0, worst_x = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        const double want = std::exp(static_cast<double>(x[i]));
        const double e = std::fabs(y[i] - want) / ulp_of(want);
        if (e > worst) worst = e, worst_x = x[i];
      }
      rill_test::report_line("tables.txt", std::string("exp of table ") + t.isa + ": max error " +
                                               std::to_string(worst).substr(0, 4) + " ulp (at x = " +
                                               std::to_string(worst_x) + ") over [-87.3, 88.3]");
      CHECK_MESSAGE(worst <= 2.0, t.isa << " exp max ulp " << worst << " at " << worst_x);
      float sp[] = {std::nanf(""), INFINITY, -INFINITY, 200.f, -200.f, 0.f, -0.f, 1.f};
      t.exp(sp, 8);
      CHECK_MESSAGE(std::isnan(sp[0]), t.isa << " exp(NaN) " << sp[0]);
      CHECK(sp[5] == 1.f);
      CHECK(sp[6] == 1.f);
      CHECK(std::fabs(sp[7] - 2.7182817f) <= 2.4e-7f * 2);
      if (std::string(t.isa) == "ref") {
        CHECK(sp[1] == INFINITY);
        CHECK(sp[2] == 0.f);
      } else {  // the clamp: finite at +inf, the smallest normal range at -inf, never 0 or inf
        float hi = 88.3f, lo = -87.3f;
        t.exp(&hi, 1);
        t.exp(&lo, 1);
        CHECK_MESSAGE(sp[1] == hi, t.isa << " exp(inf) " << sp[1]);
        CHECK(sp[3] == hi);
        CHECK(std::isfinite(hi));
        CHECK(sp[2] == lo);
        CHECK(sp[4] == lo);
        CHECK(lo > 0.f);
        CHECK(lo >= FLT_MIN);
      }
    }
  }

  TEST_CASE("GELU (erf): every table's vector form against x/2 (1 + erf(x / sqrt 2)) in double over [-12, 12]") {
    // The vector tables compute 1 + erf(z) as erfc(-z) through Numerical Recipes' erfc fit and the
    // vector exp (rowops.inl), the reference through std::erfc. Relative error where |GELU| >= 1e-6,
    // absolute error below (where GELU is a vanishing tail).
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    const size_t n = 1 << 20;
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = -12.f + 24.f * static_cast<float>(i) / static_cast<float>(n - 1);
    for (size_t ti = 0; ti < nt; ++ti) {
      const Table& t = *tables[ti];
      std::vector<float> y = x;
      t.act(Act::kGeluErf, y.data(), n);
      double rel = 0, rel_x = 0, abs_tail = 0;
      for (size_t i = 0; i < n; ++i) {
        const double xd = x[i], want = 0.5 * xd * (1.0 + std::erf(xd / std::sqrt(2.0)));
        const double e = std::fabs(y[i] - want);
        if (std::fabs(want) >= 1e-6) {
          if (e / std::fabs(want) > rel) rel = e / std::fabs(want), rel_x = xd;
        } else {
          abs_tail = std::max(abs_tail, e);
        }
      }
      char line[200];
      std::snprintf(line, sizeof line, "GELU (erf) of table %s: max relative error %.2e (at x = %.4f), max absolute "
                    "error where |GELU| < 1e-6: %.2e", t.isa, rel, rel_x, abs_tail);
      rill_test::report_line("tables.txt", line);
      CHECK_MESSAGE(rel <= 4e-6, t.isa << " GELU relative error " << rel << " at " << rel_x);
      CHECK_MESSAGE(abs_tail <= 1e-7, t.isa << " GELU tail absolute error " << abs_tail);
      float sp[] = {std::nanf(""), INFINITY, 0.f, -0.f};
      t.act(Act::kGeluErf, sp, 4);
      CHECK(std::isnan(sp[0]));
      CHECK(sp[1] == INFINITY);
      CHECK(sp[2] == 0.f);
      CHECK(sp[3] == 0.f);
    }
  }

  TEST_CASE("mamba1 scan: every kernel table matches the reference, including channel tails; channel ranges give the same bits") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(2);
    std::normal_distribution<float> nd;
    std::uniform_real_distribution<float> ud(0.001f, 2.f);
    const size_t shapes[][2] = {{1, 1}, {7, 3}, {8, 4}, {13, 16}, {80, 8}, {384, 16}, {33, 128}};
    for (size_t ti = 0; ti < nt; ++ti) {
      for (auto& sh : shapes) {
        const size_t E = sh[0], N = sh[1];
        std::vector<float> s(N * E), sr, A(N * E), dt(E), x(E), D(E), z(E), B(N), C(N), y(E), yr(E);
        for (auto& v : s) v = nd(rng);
        for (auto& v : A) v = -ud(rng) * 8;
        for (auto& v : dt) v = ud(rng);
        for (auto* vec : {&x, &D, &z, &B, &C})
          for (auto& v : *vec) v = nd(rng);
        dt[0] = 60.f;  // a decay far below f32's smallest normal must not misbehave
        sr = s;
        std::vector<float> sp = s, yp(E);  // the same steps in ranges of 16 channels, last range first
        for (int step = 0; step < 3; ++step) {
          tables[ti]->mamba1_scan(s.data(), A.data(), dt.data(), x.data(), B.data(), C.data(), D.data(), z.data(),
                                  y.data(), E, N, 0, E);
          mamba1_scan__ref(sr.data(), A.data(), dt.data(), x.data(), B.data(), C.data(), D.data(), z.data(), yr.data(),
                           E, N, 0, E);
          for (size_t c0 = (E - 1) / 16 * 16;; c0 -= 16) {
            tables[ti]->mamba1_scan(sp.data(), A.data(), dt.data(), x.data(), B.data(), C.data(), D.data(), z.data(),
                                    yp.data(), E, N, c0, std::min(E, c0 + 16));
            if (c0 == 0) break;
          }
          REQUIRE_MESSAGE(std::memcmp(sp.data(), s.data(), s.size() * 4) == 0, tables[ti]->isa << " ranges " << E);
          REQUIRE_MESSAGE(std::memcmp(yp.data(), y.data(), y.size() * 4) == 0, tables[ti]->isa << " ranges " << E);
          for (size_t i = 0; i < s.size(); ++i)
            REQUIRE_MESSAGE(std::fabs(s[i] - sr[i]) <= 2e-6f * (1 + std::fabs(sr[i])), std::string(tables[ti]->isa) << " s " << E << "x" << N);
          for (size_t c = 0; c < E; ++c)
            REQUIRE_MESSAGE(std::fabs(y[c] - yr[c]) <= 5e-6f * (1 + std::fabs(yr[c])), std::string(tables[ti]->isa) << " y " << E << "x" << N);
        }
      }
    }
  }

  TEST_CASE("s4d_step: every kernel table against the reference, channel tails, 50 steps") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(41);
    std::normal_distribution<float> nd;
    std::uniform_real_distribution<float> ur(0.3f, 0.999f), uth(-3.1f, 3.1f);
    const size_t shapes[][2] = {{1, 1}, {7, 3}, {8, 5}, {13, 16}, {256, 32}};
    for (size_t ti = 0; ti < nt; ++ti) {
      for (auto& sh : shapes) {
        const size_t H = sh[0], M = sh[1];
        std::vector<float> s(M * 2 * H), A(M * 2 * H), C(M * 2 * H), D(H), u(H), y(H), yr(H);
        for (size_t m = 0; m < M; ++m)
          for (size_t h = 0; h < H; ++h) {  // |A| < 1, as the converter guarantees
            const float r = ur(rng), th = uth(rng);
            A[m * 2 * H + h] = r * std::cos(th);
            A[m * 2 * H + H + h] = r * std::sin(th);
          }
        for (auto* vec : {&s, &C, &D})
          for (auto& v : *vec) v = nd(rng);
        std::vector<float> sr = s;
        for (int step = 0; step < 50; ++step) {
          for (auto& v : u) v = nd(rng);
          tables[ti]->s4d_step(s.data(), A.data(), C.data(), D.data(), u.data(), y.data(), H, M);
          s4d_step__ref(sr.data(), A.data(), C.data(), D.data(), u.data(), yr.data(), H, M);
        }
        float smax = 0, ymax = 0, ds = 0, dy = 0;
        for (size_t i = 0; i < s.size(); ++i) smax = std::max(smax, std::fabs(sr[i])), ds = std::max(ds, std::fabs(s[i] - sr[i]));
        for (size_t i = 0; i < H; ++i) ymax = std::max(ymax, std::fabs(yr[i])), dy = std::max(dy, std::fabs(y[i] - yr[i]));
        CHECK_MESSAGE(ds <= 1e-5f * (1 + smax), tables[ti]->isa << " s " << H << "x" << M);
        CHECK_MESSAGE(dy <= 1e-5f * (1 + ymax) * std::sqrt(float(M)), tables[ti]->isa << " y " << H << "x" << M);
      }
    }
  }

  // The scans over T tokens of one stream: within float rounding of the scalar reference, and T tokens
  // in one call leave exactly the bits of T one-token calls (what makes prefill equal stepping).
  TEST_CASE("mamba2_ssd / wkv_scan: every table against the reference; T tokens at once equal T steps (in head ranges) bit for bit") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(43);
    std::normal_distribution<float> nd;
    std::uniform_real_distribution<float> udt(0.001f, 0.5f), uw(0.55f, 1.f);
    auto max_abs = [](const std::vector<float>& v) {
      float m = 0;
      for (float x : v) m = std::max(m, std::fabs(x));
      return m;
    };
    auto max_diff = [](const std::vector<float>& a, const std::vector<float>& b) {
      float m = 0;
      for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
      return m;
    };
    // SSD: {H, P, N, G}, N on and off the vector width.
    const size_t ssd_shapes[][4] = {{4, 8, 16, 2}, {3, 5, 7, 1}, {2, 4, 128, 1}, {6, 3, 40, 3}};
    for (auto& sh : ssd_shapes) {
      const size_t H = sh[0], P = sh[1], N = sh[2], G = sh[3], E = H * P, ld = E + 2 * G * N + 3;  // padded rows
      const size_t T = 21;
      std::vector<float> X(T * ld), dt(T * H), A(H), D(E), S0(H * P * N);
      for (auto* v : {&X, &D, &S0})
        for (auto& e : *v) e = nd(rng);
      for (auto& e : dt) e = udt(rng);
      for (auto& e : A) e = -std::exp(nd(rng));
      std::vector<float> Sr = S0, yr(T * E);
      mamba2_ssd__ref(Sr.data(), X.data(), X.data() + E, X.data() + E + G * N, ld, dt.data(), A.data(), D.data(),
                      yr.data(), T, H, P, N, G, nullptr, 0, H);
      for (size_t ti = 0; ti < nt; ++ti) {
        const Table& t = *tables[ti];
        std::vector<float> Sa = S0, ya(T * E), Sb = S0, yb(T * E);
        t.mamba2_ssd(Sa.data(), X.data(), X.data() + E, X.data() + E + G * N, ld, dt.data(), A.data(), D.data(),
                     ya.data(), T, H, P, N, G, nullptr, 0, H);
        for (size_t i = 0; i < T; ++i)  // and each step in two head ranges, as two threads take them
          for (size_t part = 0; part < 2; ++part)
            t.mamba2_ssd(Sb.data(), X.data() + i * ld, X.data() + i * ld + E, X.data() + i * ld + E + G * N, ld,
                         dt.data() + i * H, A.data(), D.data(), yb.data() + i * E, 1, H, P, N, G, nullptr, part * H / 2,
                         (part + 1) * H / 2);
        CHECK_MESSAGE(std::memcmp(Sa.data(), Sb.data(), Sa.size() * 4) == 0, t.isa << " ssd state T=21 vs steps");
        CHECK_MESSAGE(std::memcmp(ya.data(), yb.data(), ya.size() * 4) == 0, t.isa << " ssd y T=21 vs steps");
        CHECK_MESSAGE(max_diff(Sa, Sr) <= 1e-5f * (1 + max_abs(Sr)), t.isa << " ssd state " << H << "x" << P << "x" << N);
        CHECK_MESSAGE(max_diff(ya, yr) <= 1e-5f * (1 + max_abs(yr)) * std::sqrt(float(N)), t.isa << " ssd y " << N);
      }
    }
    // wkv: {H, K, V}, K on and off the vector width, in its four modes (delta term or not, read before
    // or after the update).
    const size_t wkv_shapes[][3] = {{2, 16, 16}, {3, 7, 7}, {2, 64, 64}, {1, 24, 24}, {2, 32, 48}, {1, 16, 5}};
    for (auto& sh : wkv_shapes)
      for (const bool delta : {true, false})
        for (const bool first : {false, true}) {
          const size_t H = sh[0], K = sh[1], Vd = sh[2], CK = H * K, CV = H * Vd, T = 19;
          std::vector<float> r(T * CK), w(T * CK), k(T * CK), v(T * CV), a(T * CK), b(T * CK), S0(H * Vd * K);
          for (auto* vec : {&r, &k, &v, &S0})
            for (auto& e : *vec) e = nd(rng);
          for (auto& e : w) e = uw(rng);
          for (size_t t = 0; t < T; ++t)  // a = -kk, b = kk * rate with kk unit per head, as wkv7_keys makes them
            for (size_t h = 0; h < H; ++h) {
              float ss = 0;
              std::vector<float> kk(K);
              for (auto& e : kk) e = nd(rng), ss += e * e;
              for (size_t j = 0; j < K; ++j) {
                const float u = kk[j] / std::sqrt(ss);
                a[t * CK + h * K + j] = -u;
                b[t * CK + h * K + j] = u * 0.5f;
              }
            }
          const WkvIo in{r.data(), w.data(), k.data(), v.data(), delta ? a.data() : nullptr,
                         delta ? b.data() : nullptr, nullptr};
          std::vector<float> Sr = S0, yr(T * CV);
          WkvIo io = in;
          io.y = yr.data();
          wkv_scan__ref(Sr.data(), io, T, H, K, Vd, first, nullptr, 0, H);
          for (size_t ti = 0; ti < nt; ++ti) {
            const Table& t = *tables[ti];
            CAPTURE(t.isa);
            CAPTURE(K);
            CAPTURE(Vd);
            CAPTURE(delta);
            CAPTURE(first);
            std::vector<float> Sa = S0, ya(T * CV), Sb = S0, yb(T * CV);
            io.y = ya.data();
            t.wkv_scan(Sa.data(), io, T, H, K, Vd, first, nullptr, 0, H);
            io.y = yb.data();
            for (size_t i = 0; i < T; ++i)
              for (size_t part = 0; part < 2; ++part)
                t.wkv_scan(Sb.data(), wkv_at(io, i, CK, CV), 1, H, K, Vd, first, nullptr, part * H / 2,
                            (part + 1) * H / 2);
            CHECK_MESSAGE(std::memcmp(Sa.data(), Sb.data(), Sa.size() * 4) == 0, "wkv state T=19 vs steps");
            CHECK_MESSAGE(std::memcmp(ya.data(), yb.data(), ya.size() * 4) == 0, "wkv y T=19 vs steps");
            CHECK_MESSAGE(max_diff(Sa, Sr) <= 1e-4f * (1 + max_abs(Sr)), "wkv state");
            CHECK_MESSAGE(max_diff(ya, yr) <= 1e-4f * (1 + max_abs(yr)) * std::sqrt(float(K)), "wkv y");
          }
        }
  }

  // The chunked form (a workspace given): every mode, chunks whole and partial, strong and weak decays,
  // against the recurrence in double. Its bits differ from stepping's; its values may not.
  TEST_CASE("wkv_scan, chunked: every table and mode against the recurrence in double; workspace bounds kept") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(59);
    std::normal_distribution<float> nd;
    // {H, K, V, T}: one and several chunks, a partial last chunk, V off the vector width, K = 48 (a whole
    // number of AVX2 and NEON vectors, not of AVX-512's: that table keeps the recurrence).
    const size_t shapes[][4] = {{2, 32, 48, 16}, {1, 64, 64, 53}, {3, 16, 5, 40}, {2, 48, 32, 37}, {1, 128, 256, 64}};
    for (auto& sh : shapes)
      for (const bool delta : {true, false})
        for (const bool first : {false, true})
          for (const float wlo : {0.05f, 0.9f}) {  // strong decays (products underflow across a chunk) and weak
            const size_t H = sh[0], K = sh[1], Vd = sh[2], T = sh[3], CK = H * K, CV = H * Vd;
            std::uniform_real_distribution<float> uw(wlo, 1.f);
            std::vector<float> r(T * CK), w(T * CK), k(T * CK), v(T * CV), a(T * CK), b(T * CK), S0(H * Vd * K);
            for (auto* vec : {&r, &k, &v, &S0})
              for (auto& e : *vec) e = nd(rng);
            for (auto& e : w) e = uw(rng);
            for (size_t t = 0; t < T; ++t)  // Gated DeltaNet's a = k, b = -β w k with k unit per head
              for (size_t h = 0; h < H; ++h) {
                float ss = 0;
                for (size_t j = 0; j < K; ++j) ss += k[t * CK + h * K + j] * k[t * CK + h * K + j];
                const float beta = 0.2f + 1.6f * static_cast<float>(t % 7) / 7.f;
                for (size_t j = 0; j < K; ++j) {
                  const size_t c = t * CK + h * K + j;
                  k[c] /= std::sqrt(ss);
                  a[c] = k[c];
                  b[c] = -beta * w[c] * k[c];
                }
              }
            // The recurrence in double.
            std::vector<double> Sd(S0.begin(), S0.end()), yd(T * CV);
            for (size_t t = 0; t < T; ++t)
              rill_test::wkv_step_double(Sd.data(), r.data() + t * CK, w.data() + t * CK, k.data() + t * CK,
                                         v.data() + t * CV, delta ? a.data() + t * CK : nullptr, b.data() + t * CK,
                                         yd.data() + t * CV, H, K, Vd, first);
            const WkvIo in{r.data(), w.data(), k.data(), v.data(), delta ? a.data() : nullptr,
                           delta ? b.data() : nullptr, nullptr};
            const size_t per_head = wkv_chunk_floats(K, Vd);
            for (size_t ti = 0; ti < nt; ++ti) {
              const Table& t = *tables[ti];
              CAPTURE(t.isa);
              CAPTURE(K);
              CAPTURE(Vd);
              CAPTURE(T);
              CAPTURE(delta);
              CAPTURE(first);
              CAPTURE(wlo);
              // Guards around every head's workspace: the kernel stays inside its own.
              const float guard = 12345.f;
              std::vector<float> work(H * per_head + 16, guard), S = S0, y(T * CV);
              WkvIo io = in;
              io.y = y.data();
              for (size_t part = 0; part < 2; ++part)  // heads in two ranges, as two threads take them
                t.wkv_scan(S.data(), io, T, H, K, Vd, first, work.data(), part * H / 2, (part + 1) * H / 2);
              check_chunked(S, Sd, y, yd, work, H * per_head, guard);
            }
          }
  }

  // Mamba-2's SSD in chunks (a workspace given): chunks whole and partial, P off the vector width, groups,
  // strong decays (whose products underflow within a chunk) and weak ones, against the recurrence in double.
  TEST_CASE("mamba2_ssd, chunked: every table against the recurrence in double; workspace bounds kept") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(61);
    std::normal_distribution<float> nd;
    std::uniform_real_distribution<float> udt(0.001f, 0.5f);
    // {H, P, N, G, T}
    const size_t shapes[][5] = {{2, 8, 16, 1, 32}, {4, 5, 32, 2, 75}, {3, 64, 128, 1, 64},
                                {6, 3, 48, 3, 40}, {4, 64, 128, 2, 97}, {2, 16, 64, 1, 31}};
    for (auto& sh : shapes)
      for (const bool strong : {false, true}) {
        const size_t H = sh[0], P = sh[1], N = sh[2], G = sh[3], T = sh[4], E = H * P, hpg = H / G;
        const size_t ld = E + 2 * G * N + 5;  // x, B, C of a token in one padded row, as the conv leaves them
        std::vector<float> X(T * ld), dt(T * H), A(H), D(E), S0(H * P * N);
        for (auto* v : {&X, &D, &S0})
          for (auto& e : *v) e = nd(rng);
        for (auto& e : dt) e = udt(rng);
        for (auto& e : A) e = strong ? -5.f - 35.f * std::fabs(nd(rng)) : -0.1f * std::exp(0.5f * nd(rng));
        // The recurrence in double.
        std::vector<double> Sd(S0.begin(), S0.end()), yd(T * E);
        for (size_t t = 0; t < T; ++t) {
          const float* xt = X.data() + t * ld;
          for (size_t h = 0; h < H; ++h) {
            const double a = std::exp(double(dt[t * H + h]) * A[h]);
            const size_t g = h / hpg;
            for (size_t p = 0; p < P; ++p) {
              const size_t c = h * P + p;
              double acc = 0;
              for (size_t j = 0; j < N; ++j) {
                double& sv = Sd[c * N + j];
                sv = a * sv + double(dt[t * H + h]) * xt[c] * xt[E + g * N + j];
                acc += sv * xt[E + G * N + g * N + j];
              }
              yd[t * E + c] = acc + double(D[c]) * xt[c];
            }
          }
        }
        const size_t per_head = ssd_chunk_floats(P);
        for (size_t ti = 0; ti < nt; ++ti) {
          const Table& t = *tables[ti];
          CAPTURE(t.isa);
          CAPTURE(H);
          CAPTURE(P);
          CAPTURE(N);
          CAPTURE(T);
          CAPTURE(strong);
          const float guard = 12345.f;  // around every head's workspace: the kernel stays inside its own
          std::vector<float> work(H * per_head + 16, guard), S = S0, y(T * E);
          for (size_t part = 0; part < 2; ++part)  // heads in two ranges, as two threads take them
            t.mamba2_ssd(S.data(), X.data(), X.data() + E, X.data() + E + G * N, ld, dt.data(), A.data(), D.data(),
                         y.data(), T, H, P, N, G, work.data(), part * H / 2, (part + 1) * H / 2);
          check_chunked(S, Sd, y, yd, work, H * per_head, guard);
        }
      }
  }

  TEST_CASE("act / conv_silu / gated_rmsnorm / layernorm: every table against the reference; position-independent") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(47);
    std::normal_distribution<float> nd(0.f, 3.f);
    const Act kinds[] = {Act::kTanh, Act::kSigmoid, Act::kReluSq, Act::kRwkv7Decay, Act::kGeluErf,
                         Act::kGeluTanh, Act::kSilu, Act::kSoftplus, Act::kExpNegExp};
    std::vector<float> x(53);
    for (auto& v : x) v = nd(rng);
    x[3] = 0.f, x[4] = 1e-6f, x[5] = -1e-6f, x[6] = 95.f, x[7] = -95.f, x[8] = INFINITY, x[9] = -INFINITY;
    x[10] = 30.f, x[11] = -30.f, x[12] = std::nanf("");
    for (size_t ti = 0; ti < nt; ++ti) {
      const Table& t = *tables[ti];
      for (Act k : kinds) {
        std::vector<float> want = x, got = x;
        act__ref(k, want.data(), want.size());
        t.act(k, got.data(), got.size());
        for (size_t i = 0; i < x.size(); ++i) {
          const std::string isa = t.isa;
          // x / (1 + e^-x) is NaN at -inf, x sigmoid(x) -inf; GELU's -inf (1 + tanh) likewise
          if ((k == Act::kSilu || k == Act::kGeluTanh) && std::isinf(x[i])) continue;
          if (std::isnan(want[i])) {
            CHECK_MESSAGE(std::isnan(got[i]), isa << " act " << int(k) << " NaN at " << i << " got " << got[i]);
          } else if (got[i] != want[i]) {  // equal infinities pass here
            const float tol = 2e-6f * std::max(1.f, std::fabs(want[i]));
            CHECK_MESSAGE(std::fabs(got[i] - want[i]) <= tol,
                          isa << " act " << int(k) << " x=" << x[i] << " got " << got[i] << " want " << want[i]);
          }
          float one = x[i];  // the same element alone: the same bits
          t.act(k, &one, 1);
          CHECK_MESSAGE(std::memcmp(&one, &got[i], 4) == 0, isa << " act " << int(k) << " position " << i);
        }
      }
      // conv with and without SiLU: {C, K}, channel tails; T tokens at once equal T steps.
      const size_t conv_shapes[][2] = {{37, 4}, {16, 2}, {64, 5}};
      for (bool silu : {true, false})
      for (auto& sh : conv_shapes) {
        const size_t C = sh[0], K = sh[1], T = 11, ld = C + 5;
        std::vector<float> w(K * C), b(C), X(T * ld), h0((K - 1) * C);
        for (auto* v : {&w, &b, &X, &h0})
          for (auto& e : *v) e = nd(rng) * 0.3f;
        std::vector<float> hr = h0, yr(T * C), ha = h0, ya(T * C), hb = h0, yb(T * C);
        conv_silu__ref(hr.data(), w.data(), b.data(), X.data(), ld, yr.data(), T, C, K, silu, 0, C);
        t.conv_silu(ha.data(), w.data(), b.data(), X.data(), ld, ya.data(), T, C, K, silu, 0, C);
        {  // in ranges of 16 channels: the same bits
          std::vector<float> hc = h0, yc(T * C);
          for (size_t c0 = 0; c0 < C; c0 += 16)
            t.conv_silu(hc.data(), w.data(), b.data(), X.data(), ld, yc.data(), T, C, K, silu, c0, std::min(C, c0 + 16));
          CHECK(std::memcmp(hc.data(), ha.data(), hc.size() * 4) == 0);
          CHECK(std::memcmp(yc.data(), ya.data(), yc.size() * 4) == 0);
        }
        for (size_t i = 0; i < T; ++i)
          t.conv_silu(hb.data(), w.data(), b.data(), X.data() + i * ld, ld, yb.data() + i * C, 1, C, K, silu, 0, C);
        CHECK_MESSAGE(std::memcmp(ya.data(), yb.data(), ya.size() * 4) == 0, t.isa << " conv T vs steps");
        CHECK_MESSAGE(std::memcmp(ha.data(), hb.data(), ha.size() * 4) == 0, t.isa << " conv history T vs steps");
        CHECK_MESSAGE(std::memcmp(ha.data(), hr.data(), ha.size() * 4) == 0, t.isa << " conv history");
        for (size_t i = 0; i < ya.size(); ++i)
          CHECK_MESSAGE(std::fabs(ya[i] - yr[i]) <= 1e-5f * (1 + std::fabs(yr[i])), t.isa << " conv y " << C);
      }
      // Norms: rows of widths on and off the vector width.
      for (size_t d : {size_t(48), size_t(64), size_t(37)}) {
        const size_t n = 3, G = d == 64 ? 2 : 1;
        std::vector<float> X(n * d), Z(n * (d + 3)), w(d), b(d);
        for (auto* v : {&X, &Z, &w, &b})
          for (auto& e : *v) e = nd(rng);
        std::vector<float> yr(n * d), ya(n * d);
        layernorm__ref(X.data(), w.data(), b.data(), yr.data(), n, d, 1e-5f);
        t.layernorm(X.data(), w.data(), b.data(), ya.data(), n, d, 1e-5f);
        for (size_t i = 0; i < ya.size(); ++i)
          CHECK_MESSAGE(std::fabs(ya[i] - yr[i]) <= 1e-5f * (1 + std::fabs(yr[i])), t.isa << " layernorm " << d);
        std::vector<float> gr = X, ga = X;
        gated_rmsnorm__ref(gr.data(), Z.data(), d + 3, w.data(), n, d, G, 1e-5f);
        t.gated_rmsnorm(ga.data(), Z.data(), d + 3, w.data(), n, d, G, 1e-5f);
        for (size_t i = 0; i < ga.size(); ++i)
          CHECK_MESSAGE(std::fabs(ga[i] - gr[i]) <= 1e-5f * (1 + std::fabs(gr[i])), t.isa << " gated_rmsnorm " << d);
      }
    }
  }

  TEST_CASE("prepare_act in row ranges writes the bytes of one call over all rows (every table, every group)") {
    // A prefill's rows are prepared by the pool's threads, one range each: the layout must be the whole
    // T rows' and each row's bytes must not depend on the range it is in.
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    const size_t T = 13, C = 4096 + 64 + 32, ldx = C + 5;
    std::vector<float> X(T * ldx);
    for (auto& v : X) v = nd(rng) * ((rng() % 16 == 0) ? 20.f : 1.f);
    for (size_t ti = 0; ti < nt; ++ti) {
      const Table& t = *tables[ti];
      if (!t.prepare_act) continue;
      for (size_t group : {size_t(0), size_t(32), size_t(64), size_t(128)}) {
        const size_t bytes = prepare_act_bytes(T, C);
        std::vector<unsigned char> whole(bytes + 64, 0xA5), parts(bytes + 64, 0xA5);
        unsigned char *w1 = aligned64(whole), *w2 = aligned64(parts);
        QAct a1, a2, a3, a4;
        t.prepare_act(X.data(), ldx, T, C, group, w1, &a1, 0, T);
        t.prepare_act(X.data(), ldx, T, C, group, w2, &a2, 0, 5);
        t.prepare_act(X.data(), ldx, T, C, group, w2, &a3, 5, 6);
        t.prepare_act(X.data(), ldx, T, C, group, w2, &a4, 6, T);
        for (const QAct* p : {&a2, &a3, &a4}) {
          CHECK((p->q - reinterpret_cast<const int8_t*>(w2)) == (a1.q - reinterpret_cast<const int8_t*>(w1)));
          CHECK(p->ldq == a1.ldq);
          CHECK(p->ldc == a1.ldc);
          CHECK((p->corr == nullptr) == (a1.corr == nullptr));
        }
        // Both buffers start with the same bytes, so any byte one call writes and the ranges do not
        // (or write differently) shows: q, the per-block scales and sums, the int4 corrections.
        size_t diff = 0;
        for (size_t i = 0; i < bytes; ++i) diff += w1[i] != w2[i];
        CHECK_MESSAGE(diff == 0, t.isa << " group " << group << ": " << diff << " values differ");
      }
    }
  }

  TEST_CASE("q8/q4 matvec: every kernel table within the activation-rounding bound of the reference") {
    // The fast kernels round activations to int8 per 32-element block (scale s_b = max|x|/127), so
    // each x moves by at most s_b / 2: |y_fast - y_ref| <= sum_b (s_b / 2) sum_{j in b} |w_j| (w dequantized).
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    const size_t shapes[][2] = {{1, 128}, {5, 256}, {64, 768}, {3, 4096 + 128}, {2, 8192}};
    for (size_t ti = 0; ti < nt; ++ti) {
      for (auto& sh : shapes) {
        const size_t R = sh[0], C = sh[1];
        std::vector<float> W(R * C), x(C), y(R), yr(R);
        for (auto& v : W) v = nd(rng);
        for (auto& v : x) v = nd(rng) * ((rng() % 16 == 0) ? 20.f : 1.f);  // some outliers
        for (int bits : {8, 4}) {
          for (uint32_t group : {32u, 64u, 128u}) {
            if (bits == 8 && group != 32) continue;
            std::vector<uint8_t> data, scales;
            rill::convert::quantize_matrix(W, R, C, bits, bits == 8 ? static_cast<uint32_t>(C) : group, false, &data, &scales);
            std::vector<unsigned char> work;
            const QAct a = prepare(*tables[ti], x.data(), C, 1, C, bits == 8 ? 0 : group, &work);
            if (bits == 8) {
              const auto* sw = reinterpret_cast<const float*>(scales.data());
              tables[ti]->matvec_q8(reinterpret_cast<const int8_t*>(data.data()), sw, a, y.data(), R, C);
              matvec_q8__ref(reinterpret_cast<const int8_t*>(data.data()), sw, float_act(x.data(), C), yr.data(), R, C);
            } else {
              const auto* sw = reinterpret_cast<const uint16_t*>(scales.data());
              tables[ti]->matvec_q4(data.data(), sw, group, a, y.data(), R, C);
              matvec_q4__ref(data.data(), sw, group, float_act(x.data(), C), yr.data(), R, C);
            }
            // The weights' values from the test's own reading of the format (quant_oracle.h).
            const std::vector<double> wdq =
                rill_test::oracle::decode(bits, data, scales, R, C, bits == 8 ? C : group, false);
            for (size_t r = 0; r < R; ++r) {
              double bound = 0;
              for (size_t b = 0; b < C / 32; ++b) {
                float amax = 0;
                for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
                double wsum = 0;
                for (size_t j = b * 32; j < b * 32 + 32; ++j) wsum += std::fabs(wdq[r * C + j]);
                bound += amax / 127.0 / 2.0 * wsum;
              }
              REQUIRE_MESSAGE(std::fabs(y[r] - yr[r]) <= bound * 1.001 + 1e-4 * (1 + std::fabs(yr[r])),
                              std::string(tables[ti]->isa) << " q" << bits << " g" << group << " " << R << "x" << C
                              << " row " << r << ": " << y[r] << " vs " << yr[r] << " bound " << bound);
            }
          }
        }
      }
    }
  }

  TEST_CASE("q8/q4 in the 16-row layout: the same values, within the rounding bound of the reference, T tokens = T single tokens") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    // 21 rows: 16 interleaved and a tail of 5 row by row (the backend gives the tail to the row kernels;
    // the 16-row kernels take whole groups of 16).
    const size_t shapes[][2] = {{16, 128}, {48, 768}, {64, 4096 + 128}, {21, 256}};
    for (auto& sh : shapes) {
      const size_t R = sh[0], C = sh[1], ldx = C + 5, ldy = R + 3;
      std::vector<float> W(R * C), X(kMaxT * ldx), Y(kMaxT * ldy), y(R), yr(R), yrows(R);
      for (auto& v : W) v = nd(rng);
      for (auto& v : X) v = nd(rng) * ((rng() % 16 == 0) ? 20.f : 1.f);
      for (int bits : {8, 4}) {
        for (uint32_t group : {32u, 64u, 128u}) {
          if (bits == 8 && group != 32) continue;
          const uint32_t g = bits == 8 ? static_cast<uint32_t>(C) : group;
          std::vector<uint8_t> rows, rscales, x16, xscales;
          rill::convert::quantize_matrix(W, R, C, bits, g, false, &rows, &rscales);
          rill::convert::quantize_matrix(W, R, C, bits, g, true, &x16, &xscales);
          const auto* rs4 = reinterpret_cast<const uint16_t*>(rscales.data());
          const auto* xs4 = reinterpret_cast<const uint16_t*>(xscales.data());
          const auto* s8 = reinterpret_cast<const float*>(rscales.data());
          // The values, as the test's own reading of the format gives them (quant_oracle.h); both layouts
          // hold the same ones, and the kernels' accessors read each where the format puts it.
          const std::vector<double> wdq = rill_test::oracle::decode(bits, rows, rscales, R, C, g, false);
          REQUIRE(rill_test::oracle::decode(bits, x16, xscales, R, C, g, true) == wdq);
          auto w_rows = [&](size_t r, size_t c) { return wdq[r * C + c]; };
          for (size_t r = 0; r < R; ++r)
            for (size_t c = 0; c < C; ++c) {
              if (bits == 8) {
                REQUIRE(q8x16_value(x16.data(), R, C, r, c) == rill_test::oracle::q8(x16.data(), xscales.data(), R, C, r, c, true).q);
              } else {
                const auto e = rill_test::oracle::q4(x16.data(), xscales.data(), R, C, g, r, c, true);
                REQUIRE(q4x16_value(x16.data(), R, C, r, c) == e.q);
                REQUIRE(static_cast<double>(f16_to_f32(xs4[q4x16_scale_index(R, C / g, r, c / g)])) == e.scale);
                REQUIRE(q4_value(rows.data() + r * (C / 2), c) == rill_test::oracle::q4(rows.data(), rscales.data(), R, C, g, r, c, false).q);
              }
            }
          if (bits == 8) REQUIRE(rscales == xscales);  // per-row scales stay in row order
          // The references of both layouts sum in the same order: the same bits.
          auto product = [&](const Table& tb, const QAct& a, float* out, size_t ld, size_t T) {
            if (bits == 8) tb.matmul_q8x16(x16.data(), s8, a, out, ld, R, C, T);
            else tb.matmul_q4x16(x16.data(), xs4, g, a, out, ld, R, C, T);
          };
          if (bits == 8) {
            matvec_q8__ref(reinterpret_cast<const int8_t*>(rows.data()), s8, float_act(X.data(), ldx), yrows.data(), R, C);
            matmul_q8x16__ref(x16.data(), s8, float_act(X.data(), ldx), yr.data(), R, R, C, 1);
          } else {
            matvec_q4__ref(rows.data(), rs4, g, float_act(X.data(), ldx), yrows.data(), R, C);
            matmul_q4x16__ref(x16.data(), xs4, g, float_act(X.data(), ldx), yr.data(), R, R, C, 1);
          }
          REQUIRE(std::memcmp(yr.data(), yrows.data(), R * sizeof(float)) == 0);
          for (size_t ti = 0; ti < nt && R % 16 == 0; ++ti) {
            const Table& tb = *tables[ti];
            std::vector<unsigned char> work, work1;
            const QAct a1 = prepare(tb, X.data(), ldx, 1, C, 0, &work1);
            product(tb, a1, y.data(), R, 1);
            // Tightly: y is the product with either the float activations or their int8 form (whose
            // integer sums are exact), up to float rounding.
            for (size_t r = 0; r < R; ++r) {
              double want_f = 0, want_q = 0, mag = 0;
              for (size_t c = 0; c < C; ++c) {
                want_f += w_rows(r, c) * X[c];
                mag += std::fabs(w_rows(r, c) * X[c]);
                if (a1.q) want_q += w_rows(r, c) * a1.q[c] * a1.s[c / 32];
              }
              const double tol = 1e-5 * mag + 1e-6;
              REQUIRE_MESSAGE((std::fabs(y[r] - want_f) <= tol || (a1.q && std::fabs(y[r] - want_q) <= tol)),
                              std::string(tb.isa) << " q" << bits << " g" << g << " " << R << "x" << C << " row " << r
                                                  << ": " << y[r] << " vs " << want_f << " (float x), " << want_q
                                                  << " (int8 x)");
            }
            for (size_t r = 0; r < R; ++r) {  // int8 activations move each x by at most s_b / 2 (see above)
              double bound = 0, mag = 0;
              for (size_t b = 0; b < C / 32; ++b) {
                float amax = 0;
                double wsum = 0;
                for (size_t j = b * 32; j < b * 32 + 32; ++j) {
                  amax = std::max(amax, std::fabs(X[j]));
                  wsum += std::fabs(w_rows(r, j));
                  mag += std::fabs(w_rows(r, j) * X[j]);
                }
                bound += amax / 127.0 / 2.0 * wsum;
              }
              REQUIRE_MESSAGE(std::fabs(y[r] - yr[r]) <= bound * 1.001 + 2e-6 * mag + 1e-5,
                              tb.isa << " q" << bits << " g" << g << " " << R << "x" << C << " row " << r << ": "
                                     << y[r] << " vs " << yr[r] << " bound " << bound);
            }
            for (size_t T : kTokenCounts) {
              product(tb, prepare(tb, X.data(), ldx, T, C, 0, &work), Y.data(), ldy, T);
              for (size_t t = 0; t < T; ++t) {
                product(tb, prepare(tb, X.data() + t * ldx, ldx, 1, C, 0, &work1), y.data(), R, 1);
                REQUIRE_MESSAGE(std::memcmp(y.data(), Y.data() + t * ldy, R * sizeof(float)) == 0,
                                tb.isa << " q" << bits << " g" << g << " T=" << T << " t=" << t);
              }
            }
          }
        }
      }
    }
  }

  TEST_CASE("matmul f32/f16/q4 equal T matvec calls bit for bit (every table, strided X and Y)") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    const size_t R = 21, C = 4096 + 128 + 7, C4 = 4096 + 256, ldx = C4 + 3, ldy = R + 1;  // ldx covers both widths
    std::vector<float> W(R * C4), X(kMaxT * ldx), Y(kMaxT * ldy), y(R);
    for (auto& v : W) v = nd(rng);
    for (auto& v : X) v = nd(rng);
    std::vector<uint16_t> Wh(R * C);
    for (size_t i = 0; i < R * C; ++i) Wh[i] = f32_to_f16(W[i]);
    std::vector<uint8_t> q4, s4;
    rill::convert::quantize_matrix(W, R, C4, 4, 64, false, &q4, &s4);
    const auto* sw4 = reinterpret_cast<const uint16_t*>(s4.data());
    for (size_t ti = 0; ti < nt; ++ti) {
      const Table& tb = *tables[ti];
      for (size_t T : kTokenCounts) {
        for (int kind = 0; kind < 3; ++kind) {
          std::vector<unsigned char> work, work1;
          if (kind == 0) tb.matmul_f32(W.data(), X.data(), ldx, Y.data(), ldy, R, C, T);
          if (kind == 1) tb.matmul_f16(Wh.data(), X.data(), ldx, Y.data(), ldy, R, C, T);
          if (kind == 2) tb.matmul_q4(q4.data(), sw4, 64, prepare(tb, X.data(), ldx, T, C4, 64, &work), Y.data(), ldy, R, C4, T);
          for (size_t t = 0; t < T; ++t) {
            if (kind == 0) tb.matvec_f32(W.data(), X.data() + t * ldx, y.data(), R, C);
            if (kind == 1) tb.matvec_f16(Wh.data(), X.data() + t * ldx, y.data(), R, C);
            if (kind == 2) tb.matvec_q4(q4.data(), sw4, 64, prepare(tb, X.data() + t * ldx, ldx, 1, C4, 64, &work1), y.data(), R, C4);
            REQUIRE_MESSAGE(std::memcmp(y.data(), Y.data() + t * ldy, R * sizeof(float)) == 0,
                            std::string(tb.isa) << " kind " << kind << " T=" << T << " t=" << t);
          }
        }
      }
    }
  }

  TEST_CASE("matmul_q8 equals T matvec_q8 calls bit for bit (every table, strided X and Y)") {
    const Table* tables[8];
    const size_t nt = available(tables, 8);
    std::mt19937 rng(4);
    std::normal_distribution<float> nd;
    const size_t R = 37, C = 4096 + 96, ldx = C + 5, ldy = R + 3;
    std::vector<float> W(R * C), X(kMaxT * ldx), Y(kMaxT * ldy), y(R);
    for (auto& v : W) v = nd(rng);
    for (auto& v : X) v = nd(rng);
    std::vector<uint8_t> data, scales;
    rill::convert::quantize_matrix(W, R, C, 8, static_cast<uint32_t>(C), false, &data, &scales);
    const auto* q = reinterpret_cast<const int8_t*>(data.data());
    const auto* sw = reinterpret_cast<const float*>(scales.data());
    for (size_t ti = 0; ti < nt; ++ti) {
      for (size_t T : kTokenCounts) {
        std::vector<unsigned char> work, work1;
        tables[ti]->matmul_q8(q, sw, prepare(*tables[ti], X.data(), ldx, T, C, 0, &work), Y.data(), ldy, R, C, T);
        for (size_t t = 0; t < T; ++t) {
          tables[ti]->matvec_q8(q, sw, prepare(*tables[ti], X.data() + t * ldx, ldx, 1, C, 0, &work1), y.data(), R, C);
          REQUIRE_MESSAGE(std::memcmp(y.data(), Y.data() + t * ldy, R * sizeof(float)) == 0,
                          std::string(tables[ti]->isa) << " T=" << T << " t=" << t);
        }
      }
    }
  }

  TEST_CASE("softplus follows PyTorch's threshold and never overflows") {
    CHECK(softplus(30.f) == 30.f);
    CHECK(softplus(1000.f) == 1000.f);
    CHECK(std::fabs(softplus(0.f) - std::log(2.f)) < 1e-7f);
    CHECK(std::isfinite(softplus(20.f)));
    CHECK(softplus(-100.f) >= 0.f);
  }

  TEST_CASE("conv1d step: window order and history shift") {
    // E = 2 channels, K = 3: out = silu(b + w0*h0 + w1*h1 + w2*x)
    float hist[4] = {1, 10, 2, 20};  // [K-1=2, E=2]: oldest (1,10), then (2,20)
    const float w[6] = {0.1f, 0.01f, 0.2f, 0.02f, 0.3f, 0.03f};
    const float b[2] = {0.5f, -0.5f};
    const float x[2] = {3, 30};
    float out[2];
    conv1d_step_silu(hist, w, b, x, out, 2, 3);
    const float pre0 = 0.5f + 0.1f * 1 + 0.2f * 2 + 0.3f * 3;
    const float pre1 = -0.5f + 0.01f * 10 + 0.02f * 20 + 0.03f * 30;
    CHECK(out[0] == doctest::Approx(pre0 / (1 + std::exp(-pre0))));
    CHECK(out[1] == doctest::Approx(pre1 / (1 + std::exp(-pre1))));
    CHECK(hist[0] == 2);
    CHECK(hist[1] == 20);
    CHECK(hist[2] == 3);
    CHECK(hist[3] == 30);
  }
}
