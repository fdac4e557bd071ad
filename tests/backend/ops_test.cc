// Op by op, every compiled-in backend (in the spirit of ggml's test-backend-ops): each op of each
// backend's table runs on awkward shapes (odd widths, SIMD tails, strided rows, rows of different
// states in one call) and is checked twice:
//   - against an oracle written here in double precision from the op's definition in backend.h;
//   - against the reference backend (cpu-ref, the scalar kernels), for every other backend.
// Recurrent ops get rows from two states interleaved (A, A, B, A), so row order and per-row state
// addressing are both exercised; the states they leave are checked as well as their outputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/backends.h"
#include "kernels/kernels.h"
#include "content.h"
#include "rill/extension.hpp"
#include "quant_oracle.h"
#include "test_util.h"

using namespace rill;

namespace {

using Floats = std::vector<float>;
using Doubles = std::vector<double>;

using rill_test::backends;

Floats randn(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> nd;
  Floats v(n);
  for (float& x : v) x = nd(rng) * scale;
  return v;
}

// Runs `run` (the op on fresh copies of its inputs; returns every output and state flattened) on
// every backend: each result within tol[i] of the oracle, and other backends within 2 tol[i] of the
// reference backend's result. A single tolerance applies to every element when tol has one entry.
void check(const std::string& what, const std::function<Floats(const Exec&)>& run, const Doubles& want,
           const Doubles& tol, const ParallelFor* pool = nullptr) {
  const std::vector<const BackendImpl*> all = backends();
  REQUIRE(!all.empty());
  REQUIRE(std::string(all[0]->name) == "cpu-ref");
  Floats ref;
  for (const BackendImpl* be : all) {
    AlignedBuffer w;  // the ops' workspace, 64-byte aligned as in an arena
    REQUIRE(AlignedBuffer::allocate(be->work_bytes(be, 32, 8192), &w) == Status::kOk);
    const Exec x{be, pool, nullptr, nullptr, static_cast<unsigned char*>(w.data())};
    const Floats got = run(x);
    REQUIRE_MESSAGE(got.size() == want.size(), what);
    if (be == all[0]) ref = got;
    for (size_t i = 0; i < got.size(); ++i) {
      const double t = tol.size() == 1 ? tol[0] : tol[i];
      REQUIRE_MESSAGE(std::fabs(got[i] - want[i]) <= t, be->name << " " << what << " [" << i << "]: " << got[i]
                                                                   << " vs oracle " << want[i] << " (tol " << t << ")");
      REQUIRE_MESSAGE(std::fabs(got[i] - ref[i]) <= 2 * t,
                      be->name << " " << what << " [" << i << "]: " << got[i] << " vs cpu-ref " << ref[i]);
    }
  }
}

// A ParallelFor that runs the tasks on the calling thread, last first, cut into 3 slices: the contract
// allows any order and any thread, so results must not change.
struct ReversedSerial : ParallelFor {
  ReversedSerial() {
    n_threads = 3;
    run = [](const ParallelFor*, Task task, void* ctx, size_t n) {
      for (size_t i = n; i-- > 0;) task(ctx, i);
    };
  }
};

Doubles tol_rel(const Doubles& want, double rel, double abs) {
  Doubles t(want.size());
  for (size_t i = 0; i < want.size(); ++i) t[i] = abs + rel * std::fabs(want[i]);
  return t;
}

// States for recurrent ops: two blocks, rows use A, A, B, A.
struct States {
  Floats a, b;
  unsigned char* base[4];
  States(const Floats& init_a, const Floats& init_b) : a(init_a), b(init_b) {
    unsigned char* pa = reinterpret_cast<unsigned char*>(a.data());
    unsigned char* pb = reinterpret_cast<unsigned char*>(b.data());
    base[0] = pa, base[1] = pa, base[2] = pb, base[3] = pa;
  }
  StateRef ref() const { return StateRef{base, 0}; }
};
constexpr int kRowState[4] = {0, 0, 1, 0};  // which state each of the 4 rows advances

Floats cat(std::initializer_list<const Floats*> parts) {
  Floats out;
  for (const Floats* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

double silu(double x) { return x / (1 + std::exp(-x)); }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

// ---- weights of every dtype, with their dequantized values
struct Weights {
  std::vector<uint8_t> data, scales;
  TensorView v;
  Doubles deq;  // [rows, cols]
};

Weights make_weights(DType dt, size_t R, size_t C, uint32_t group, std::mt19937& rng, bool rows16 = false) {
  Weights w;
  const Floats f = randn(R * C, rng);
  w.deq.resize(R * C);
  if (dt == DType::kF32) {
    w.data.resize(R * C * 4);
    std::memcpy(w.data.data(), f.data(), R * C * 4);
    for (size_t i = 0; i < R * C; ++i) w.deq[i] = f[i];
  } else if (dt == DType::kF16) {
    w.data.resize(R * C * 2);
    auto* h = reinterpret_cast<uint16_t*>(w.data.data());
    for (size_t i = 0; i < R * C; ++i) h[i] = kernels::f32_to_f16(f[i]), w.deq[i] = rill_test::oracle::half(h[i]);
  } else {
    // Quantized by the converter, read back by the test's own decoder of the format's bytes
    // (quant_oracle.h): the expected products never come from the kernels' accessors.
    const int bits = dt == DType::kI8 ? 8 : 4;
    if (bits == 8) group = static_cast<uint32_t>(C);
    convert::quantize_matrix(f, R, C, bits, group, rows16, &w.data, &w.scales);
    w.deq = rill_test::oracle::decode(bits, w.data, w.scales, R, C, group, rows16);
  }
  w.v.data = w.data.data();
  w.v.dtype = dt;
  w.v.scales = w.scales.empty() ? nullptr : w.scales.data();
  w.v.group = (dt == DType::kI8 || dt == DType::kI4) ? group : 0;
  w.v.rows16 = rows16;
  w.v.ndim = 2;
  w.v.shape[0] = R, w.v.shape[1] = C;
  return w;
}

const char* dtype_str(DType d) {
  switch (d) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kI8: return "q8";
    case DType::kI4: return "q4";
    default: return "?";
  }
}

}  // namespace

// On the CUDA emulation (rill_cuda_emu_tests) the suite has a name of its own, so the test script can
// count and require the CUDA cases.
#if defined(RILL_TEST_CUDA_EMU)
#define RILL_OPS_SUITE "cuda_emu_ops"
#else
#define RILL_OPS_SUITE "ops"
#endif
TEST_SUITE(RILL_OPS_SUITE) {
  TEST_CASE("the reference backend comes first and every backend fills every op") {
    const auto all = backends();
    REQUIRE(!all.empty());
    CHECK(std::string(all[0]->name) == "cpu-ref");
    CHECK(find_backend(Backend::kCpu) != nullptr);
    const BackendImpl* cuda = find_backend(Backend::kCuda);  // absent, or (RILL_CUDA builds) the device backend
    CHECK((cuda == nullptr || (cuda->device != nullptr && std::string(cuda->name) == "cuda")));
    std::string names;
    for (const BackendImpl* be : all) {
      names += std::string(be->name) + " ";
      const Ops& o = *be->ops;
      const void* entries[] = {reinterpret_cast<const void*>(o.embed.fn), reinterpret_cast<const void*>(o.rmsnorm.fn),
                               reinterpret_cast<const void*>(o.layernorm.fn), reinterpret_cast<const void*>(o.group_norm.fn),
                               reinterpret_cast<const void*>(o.gated_rmsnorm.fn), reinterpret_cast<const void*>(o.conv_step.fn),
                               reinterpret_cast<const void*>(o.ssm_scan.fn), reinterpret_cast<const void*>(o.ssd_step.fn),
                               reinterpret_cast<const void*>(o.wkv.fn), reinterpret_cast<const void*>(o.token_shift.fn),
                               reinterpret_cast<const void*>(o.softplus_dt.fn), reinterpret_cast<const void*>(o.act.fn),
                               reinterpret_cast<const void*>(o.add.fn), reinterpret_cast<const void*>(o.add_bias.fn),
                               reinterpret_cast<const void*>(o.mul.fn), reinterpret_cast<const void*>(o.lerp.fn),
                               reinterpret_cast<const void*>(o.wkv7_keys.fn), reinterpret_cast<const void*>(o.wkv7_bonus.fn),
                               reinterpret_cast<const void*>(o.delta_keys.fn), reinterpret_cast<const void*>(o.gate_keys.fn),
                               reinterpret_cast<const void*>(o.s4d_step.fn), reinterpret_cast<const void*>(o.running_mean.fn),
                               reinterpret_cast<const void*>(o.glu.fn), reinterpret_cast<const void*>(o.standardize.fn),
                               reinterpret_cast<const void*>(o.scale.fn), reinterpret_cast<const void*>(o.positions.fn),
                               reinterpret_cast<const void*>(o.rglru.fn), reinterpret_cast<const void*>(o.rope.fn),
                               reinterpret_cast<const void*>(o.attend.fn)};
      for (const void* e : entries) CHECK_MESSAGE(e != nullptr, be->name);
      for (DType d : {DType::kF32, DType::kF16, DType::kI8, DType::kI4})
        CHECK_MESSAGE(bool(o.matmul_by_dtype[static_cast<size_t>(d)]), be->name << " " << dtype_str(d));
    }
#if defined(RILL_TEST_CUDA_EMU)
    rill_test::report_line("tables.txt", "op backends run on the CUDA emulation (thread order " +
                                             std::string(cuda_emu::thread_order() == cuda_emu::Order::kReverse ? "reverse" : "forward") +
                                             "): " + names);
    return;
#endif
    const kernels::Table* built[8];
    const size_t nb = kernels::compiled(built, 8);
    std::string not_run;
    for (size_t i = 0; i < nb; ++i)
      if (names.find(std::string("cpu-") + built[i]->isa + " ") == std::string::npos) not_run += std::string("cpu-") + built[i]->isa + " ";
    if (find_backend(Backend::kCuda)) not_run += "cuda (the device suite runs its ops where there is a device) ";
    rill_test::report_line("tables.txt", "op backends run: " + names + "; compiled but not run here: " + (not_run.empty() ? "none" : not_run));
  }

  TEST_CASE("matmul: every dtype, odd shapes, strided rows, 1 to 37 rows, on one thread and split over a pool") {
    ReversedSerial reversed;
    std::vector<const ParallelFor*> pools = {nullptr, &reversed};
    ThreadPool* pool = nullptr;  // pthreadpool, where this build has it
    if (ThreadPool::create(2, &pool) == Status::kOk) pools.push_back(pool);
    else MESSAGE("this build has no pthreadpool: the split is checked with the reversed serial ParallelFor only");
    std::mt19937 rng(11);
    struct Shape {
      size_t R, C;
    };
    // Float weights take any width; quantized ones multiples of 32 (64/128 for those groups). 4096 + 128
    // crosses the int8 kernels' column chunk.
    const Shape float_shapes[] = {{1, 1}, {3, 7}, {37, 40}, {80, 129}, {65, 255}};
    const Shape quant_shapes[] = {{1, 128}, {5, 256}, {70, 384}, {3, 4096 + 128}};
    // The 16-row layouts: 208 rows split over 2 threads in 8 slices of 16 or 32 rows; a tail of rows % 16
    // rows stored row by row (3, 21 and 70 rows; 70 split at multiples of 16, its last slice the 6 tail
    // rows alone).
    const Shape rows16_shapes[] = {{16, 128}, {48, 256}, {208, 384}, {16, 4096 + 128}, {3, 256}, {21, 128}, {70, 384}};
    struct Kind {
      DType dt;
      uint32_t group;
      bool rows16;
    };
    const Kind kinds[] = {{DType::kF32, 0, false}, {DType::kF16, 0, false}, {DType::kI8, 0, false},
                          {DType::kI4, 32, false}, {DType::kI4, 64, false}, {DType::kI4, 128, false},
                          {DType::kI8, 0, true},   {DType::kI4, 32, true},  {DType::kI4, 64, true},
                          {DType::kI4, 128, true}};
    for (const Kind& k : kinds) {
      const bool quant = k.dt == DType::kI8 || k.dt == DType::kI4;
      for (const Shape& sh : k.rows16 ? std::vector<Shape>(std::begin(rows16_shapes), std::end(rows16_shapes))
                             : quant  ? std::vector<Shape>(std::begin(quant_shapes), std::end(quant_shapes))
                                      : std::vector<Shape>(std::begin(float_shapes), std::end(float_shapes))) {
        const Weights W = make_weights(k.dt, sh.R, sh.C, k.group, rng, k.rows16);
        for (size_t n : {1, 3, 9, 37}) {  // 37: past a 32-token tile (the CUDA kernels' prefill tile)
          const size_t ldx = sh.C + 3, ldy = sh.R + 2;
          Floats X = randn(n * ldx, rng);
          for (size_t i = 0; i < X.size(); i += 17) X[i] *= 20;  // outliers
          Doubles want(n * sh.R), tol(n * sh.R);
          for (size_t i = 0; i < n; ++i)
            for (size_t r = 0; r < sh.R; ++r) {
              double acc = 0, mag = 0, act_bound = 0;
              for (size_t c = 0; c < sh.C; ++c) {
                acc += W.deq[r * sh.C + c] * X[i * ldx + c];
                mag += std::fabs(W.deq[r * sh.C + c] * X[i * ldx + c]);
              }
              // Backends may round activations to int8 per 32-element block (scale amax / 127): each
              // x moves by at most scale / 2.
              if (quant)
                for (size_t b = 0; b < sh.C / 32; ++b) {
                  double amax = 0, wsum = 0;
                  for (size_t c = b * 32; c < b * 32 + 32; ++c)
                    amax = std::max(amax, std::fabs(double(X[i * ldx + c]))), wsum += std::fabs(W.deq[r * sh.C + c]);
                  act_bound += amax / 127 / 2 * wsum;
                }
              want[i * sh.R + r] = acc;
              tol[i * sh.R + r] = act_bound * 1.001 + 2e-6 * mag + 1e-6;
            }
          for (const ParallelFor* pl : pools) {
            auto run = [&](const Exec& x) {
              Floats Y(n * ldy, -7.f);
              x.backend->ops->matmul(x, W.v, X.data(), ldx, Y.data(), ldy, n);
              Floats out;
              for (size_t i = 0; i < n; ++i) out.insert(out.end(), Y.begin() + i * ldy, Y.begin() + i * ldy + sh.R);
              return out;
            };
            check(std::string("matmul ") + dtype_str(k.dt) + (k.rows16 ? "x16" : "") + " g" + std::to_string(k.group) + " " +
                      std::to_string(sh.R) + "x" + std::to_string(sh.C) + " n=" + std::to_string(n) +
                      (pl ? " split " + std::to_string(pl->n_threads) : ""),
                  run, want, tol, pl);
          }
        }
      }
    }
    ThreadPool::destroy(pool);
  }

  TEST_CASE("embed: every dtype, rows 0 and V-1") {
    std::mt19937 rng(12);
    struct Kind {
      DType dt;
      uint32_t group;
      size_t d, V;
      bool rows16;
    };
    for (const Kind& k : {Kind{DType::kF32, 0, 13, 37, false}, Kind{DType::kF16, 0, 13, 37, false},
                          Kind{DType::kI8, 0, 96, 37, false}, Kind{DType::kI4, 32, 96, 37, false},
                          Kind{DType::kI4, 128, 128, 37, false}, Kind{DType::kI4, 64, 128, 48, true},
                          Kind{DType::kI8, 0, 96, 32, true}, Kind{DType::kI4, 32, 64, 37, true},
                          Kind{DType::kI8, 0, 64, 37, true}}) {
      const Weights W = make_weights(k.dt, k.V, k.d, k.group, rng, k.rows16);
      const int32_t tokens[] = {0, static_cast<int32_t>(k.V - 1), 5, 5, 17};
      Doubles want;
      for (int32_t t : tokens) want.insert(want.end(), W.deq.begin() + t * k.d, W.deq.begin() + (t + 1) * k.d);
      check(std::string("embed ") + dtype_str(k.dt) + (k.rows16 ? "x16" : ""),
            [&](const Exec& x) {
              Floats out(5 * k.d);
              x.backend->ops->embed(x, W.v, tokens, out.data(), 5);
              return out;
            },
            want, {1e-6});
    }
  }

  TEST_CASE("norms: rmsnorm, layernorm, group_norm, gated_rmsnorm") {
    std::mt19937 rng(13);
    for (size_t d : {1, 7, 773}) {
      const size_t n = 3;
      const Floats X = randn(n * d, rng, 3.f), w = randn(d, rng), b = randn(d, rng);
      Doubles rms(n * d), ln(n * d);
      for (size_t i = 0; i < n; ++i) {
        double ss = 0, mu = 0, var = 0;
        for (size_t c = 0; c < d; ++c) ss += double(X[i * d + c]) * X[i * d + c], mu += X[i * d + c];
        mu /= d;
        for (size_t c = 0; c < d; ++c) var += (X[i * d + c] - mu) * (X[i * d + c] - mu);
        for (size_t c = 0; c < d; ++c) {
          rms[i * d + c] = X[i * d + c] / std::sqrt(ss / d + 1e-5) * w[c];
          ln[i * d + c] = (X[i * d + c] - mu) / std::sqrt(var / d + 1e-5) * w[c] + b[c];
        }
      }
      check("rmsnorm d=" + std::to_string(d),
            [&](const Exec& x) {
              Floats Y(n * d);
              x.backend->ops->rmsnorm(x, X.data(), w.data(), Y.data(), n, d, 1e-5f);
              return Y;
            },
            rms, tol_rel(rms, 2e-5, 1e-5));
      check("layernorm d=" + std::to_string(d),
            [&](const Exec& x) {
              Floats Y(n * d);
              x.backend->ops->layernorm(x, X.data(), w.data(), b.data(), Y.data(), n, d, 1e-5f);
              return Y;
            },
            ln, tol_rel(ln, 2e-5, 1e-5));
    }
    for (auto HN : {std::pair<size_t, size_t>{3, 5}, {2, 64}}) {
      const size_t H = HN.first, N = HN.second, C = H * N, n = 2;
      const Floats Y0 = randn(n * C, rng, 2.f), w = randn(C, rng), b = randn(C, rng);
      Doubles want(n * C);
      for (size_t i = 0; i < n; ++i)
        for (size_t h = 0; h < H; ++h) {
          const float* y = Y0.data() + i * C + h * N;
          double mu = 0, var = 0;
          for (size_t j = 0; j < N; ++j) mu += y[j];
          mu /= N;
          for (size_t j = 0; j < N; ++j) var += (y[j] - mu) * (y[j] - mu);
          for (size_t j = 0; j < N; ++j)
            want[i * C + h * N + j] = (y[j] - mu) / std::sqrt(var / N + 64e-5) * w[h * N + j] + b[h * N + j];
        }
      check("group_norm H=" + std::to_string(H) + " N=" + std::to_string(N),
            [&](const Exec& x) {
              Floats Y = Y0;
              x.backend->ops->group_norm(x, Y.data(), w.data(), b.data(), n, H, N, 64e-5f);
              return Y;
            },
            want, tol_rel(want, 2e-5, 1e-5));
    }
    for (size_t G : {1, 2, 3}) {
      const size_t E = 24, n = 3, ldz = 31;
      const Floats Y0 = randn(n * E, rng), Z = randn(n * ldz, rng), w = randn(E, rng);
      Doubles want(n * E);
      for (size_t i = 0; i < n; ++i)
        for (size_t g = 0; g < G; ++g) {
          const size_t gs = E / G;
          Doubles y(gs);
          double ss = 0;
          for (size_t j = 0; j < gs; ++j) {
            const size_t c = g * gs + j;
            y[j] = Y0[i * E + c] * silu(Z[i * ldz + c]);
            ss += y[j] * y[j];
          }
          for (size_t j = 0; j < gs; ++j) want[i * E + g * gs + j] = y[j] / std::sqrt(ss / gs + 1e-5) * w[g * gs + j];
        }
      check("gated_rmsnorm G=" + std::to_string(G),
            [&](const Exec& x) {
              Floats Y = Y0;
              x.backend->ops->gated_rmsnorm(x, Y.data(), Z.data(), ldz, w.data(), n, E, G, 1e-5f);
              return Y;
            },
            want, tol_rel(want, 2e-5, 1e-5));
    }
  }

  TEST_CASE("conv_step: rows of two states in order, with and without bias and SiLU, K = 2 and 4") {
    std::mt19937 rng(14);
    for (size_t K : {2, 4}) {
      for (int variant = 0; variant < 4; ++variant) {
        const bool bias = variant & 1, use_silu = variant & 2;
        const size_t C = 13, n = 4, ldx = 17;
        const Floats ha = randn((K - 1) * C, rng), hb = randn((K - 1) * C, rng), w = randn(K * C, rng),
                     b = randn(C, rng), X = randn(n * ldx, rng);
        // Oracle: per row, window = history (oldest first) then the new sample.
        std::vector<Doubles> hist = {Doubles(ha.begin(), ha.end()), Doubles(hb.begin(), hb.end())};
        Doubles y(n * C);
        for (size_t i = 0; i < n; ++i) {
          Doubles& h = hist[kRowState[i]];
          for (size_t c = 0; c < C; ++c) {
            double acc = bias ? b[c] : 0;
            for (size_t k = 0; k + 1 < K; ++k) acc += w[k * C + c] * h[k * C + c];
            acc += w[(K - 1) * C + c] * X[i * ldx + c];
            y[i * C + c] = use_silu ? silu(acc) : acc;
          }
          for (size_t k = 0; k + 2 < K; ++k)
            for (size_t c = 0; c < C; ++c) h[k * C + c] = h[(k + 1) * C + c];
          for (size_t c = 0; c < C; ++c) h[(K - 2) * C + c] = X[i * ldx + c];
        }
        Doubles want = y;
        want.insert(want.end(), hist[0].begin(), hist[0].end());
        want.insert(want.end(), hist[1].begin(), hist[1].end());
        check("conv_step K=" + std::to_string(K) + (bias ? " bias" : "") + (use_silu ? " silu" : ""),
              [&](const Exec& x) {
                States s(ha, hb);
                Floats Y(n * C);
                x.backend->ops->conv_step(x, s.ref(), w.data(), bias ? b.data() : nullptr, X.data(), ldx, Y.data(), n,
                                          C, K, use_silu);
                return cat({&Y, &s.a, &s.b});
              },
              want, tol_rel(want, 1e-5, 1e-6));
      }
    }
  }

  TEST_CASE("ssm_scan (Mamba-1): channel tails, a huge dt, strided B/C and z, rows of two states") {
    std::mt19937 rng(15);
    std::uniform_real_distribution<float> ud(0.001f, 2.f);
    for (auto EN : {std::pair<size_t, size_t>{19, 5}, {8, 16}, {1, 3}}) {
      const size_t E = EN.first, N = EN.second, n = 4, ldbc = 2 * N + 3, ldz = E + 5;
      const Floats sa = randn(N * E, rng), sb = randn(N * E, rng), D = randn(E, rng), X = randn(n * E, rng),
                   BC = randn(n * ldbc, rng), Z = randn(n * ldz, rng);
      Floats A(N * E), dt(n * E);
      for (float& v : A) v = -ud(rng) * 8;
      for (float& v : dt) v = ud(rng);
      dt[0] = 60.f;  // a decay far below f32's smallest normal
      std::vector<Doubles> st = {Doubles(sa.begin(), sa.end()), Doubles(sb.begin(), sb.end())};
      Doubles y(n * E);
      for (size_t i = 0; i < n; ++i) {
        Doubles& s = st[kRowState[i]];
        const float* B = BC.data() + i * ldbc;
        const float* Cm = B + N;
        for (size_t c = 0; c < E; ++c) {
          const double d = dt[i * E + c], xc = X[i * E + c];
          double acc = D[c] * xc;
          for (size_t j = 0; j < N; ++j) {
            s[j * E + c] = std::exp(d * A[j * E + c]) * s[j * E + c] + d * B[j] * xc;
            acc += s[j * E + c] * Cm[j];
          }
          y[i * E + c] = acc * silu(Z[i * ldz + c]);
        }
      }
      Doubles want = y;
      want.insert(want.end(), st[0].begin(), st[0].end());
      want.insert(want.end(), st[1].begin(), st[1].end());
      check("ssm_scan E=" + std::to_string(E) + " N=" + std::to_string(N),
            [&](const Exec& x) {
              States s(sa, sb);
              Floats Y(n * E);
              x.backend->ops->ssm_scan(x, s.ref(), A.data(), dt.data(), X.data(), BC.data(), BC.data() + N, ldbc,
                                       D.data(), Z.data(), ldz, Y.data(), n, E, N);
              return cat({&Y, &s.a, &s.b});
            },
            want, tol_rel(want, 2e-5, 2e-5));
    }
  }

  TEST_CASE("ssd_step (Mamba-2): groups, strided x/B/C, rows of two states") {
    std::mt19937 rng(16);
    std::uniform_real_distribution<float> ud(0.01f, 1.5f);
    const size_t H = 4, P = 3, N = 5, G = 2, E = H * P, n = 4, ldx = E + 2 * G * N + 3;
    const Floats Sa = randn(H * P * N, rng), Sb = randn(H * P * N, rng), xbc = randn(n * ldx, rng), D = randn(E, rng);
    Floats dt(n * H), A(H);
    for (float& v : dt) v = ud(rng);
    for (float& v : A) v = -ud(rng) * 3;
    std::vector<Doubles> st = {Doubles(Sa.begin(), Sa.end()), Doubles(Sb.begin(), Sb.end())};
    Doubles y(n * E);
    for (size_t i = 0; i < n; ++i) {
      Doubles& S = st[kRowState[i]];
      const float* x = xbc.data() + i * ldx;
      const float* B = x + E;
      const float* Cm = B + G * N;
      for (size_t h = 0; h < H; ++h) {
        const size_t g = h / (H / G);
        const double a = std::exp(double(dt[i * H + h]) * A[h]);
        for (size_t p = 0; p < P; ++p) {
          const size_t c = h * P + p;
          double acc = 0;
          for (size_t j = 0; j < N; ++j) {
            double& s = S[c * N + j];
            s = a * s + double(dt[i * H + h]) * x[c] * B[g * N + j];
            acc += s * Cm[g * N + j];
          }
          y[i * E + c] = acc + D[c] * x[c];
        }
      }
    }
    Doubles want = y;
    want.insert(want.end(), st[0].begin(), st[0].end());
    want.insert(want.end(), st[1].begin(), st[1].end());
    check("ssd_step",
          [&](const Exec& x) {
            States s(Sa, Sb);
            Floats Y(n * E);
            x.backend->ops->ssd_step(x, s.ref(), xbc.data(), xbc.data() + E, xbc.data() + E + G * N, ldx, dt.data(),
                                     A.data(), D.data(), Y.data(), n, H, P, N, G, nullptr);
            return cat({&Y, &s.a, &s.b});
          },
          want, tol_rel(want, 2e-5, 2e-5));
  }

  TEST_CASE("s4d_step, running_mean, glu, standardize (S4D and vector input): rows of two states") {
    std::mt19937 rng(23);
    const size_t H = 7, M = 3, n = 4;
    const Floats Sa = randn(M * 2 * H, rng), Sb = randn(M * 2 * H, rng), C = randn(M * 2 * H, rng),
                 D = randn(H, rng), U = randn(n * H, rng);
    Floats A(M * 2 * H);  // |A| < 1, as the converter guarantees
    for (size_t m = 0; m < M; ++m)
      for (size_t h = 0; h < H; ++h) {
        const double r = 0.5 + 0.49 * std::uniform_real_distribution<double>(0, 1)(rng), th = 0.3 * (m + 1) + 0.1 * h;
        A[m * 2 * H + h] = static_cast<float>(r * std::cos(th));
        A[m * 2 * H + H + h] = static_cast<float>(r * std::sin(th));
      }
    std::vector<Doubles> st = {Doubles(Sa.begin(), Sa.end()), Doubles(Sb.begin(), Sb.end())};
    Doubles y(n * H);
    for (size_t i = 0; i < n; ++i) {
      Doubles& S = st[kRowState[i]];
      for (size_t h = 0; h < H; ++h) {
        std::complex<double> acc = 0;
        for (size_t m = 0; m < M; ++m) {
          const std::complex<double> a(A[m * 2 * H + h], A[m * 2 * H + H + h]), c(C[m * 2 * H + h], C[m * 2 * H + H + h]);
          std::complex<double> x(S[m * 2 * H + h], S[m * 2 * H + H + h]);
          x = a * x + double(U[i * H + h]);
          S[m * 2 * H + h] = x.real();
          S[m * 2 * H + H + h] = x.imag();
          acc += c * x;
        }
        y[i * H + h] = 2 * acc.real() + double(D[h]) * U[i * H + h];
      }
    }
    Doubles want = y;
    want.insert(want.end(), st[0].begin(), st[0].end());
    want.insert(want.end(), st[1].begin(), st[1].end());
    check("s4d_step",
          [&](const Exec& x) {
            States s(Sa, Sb);
            Floats Y(n * H);
            x.backend->ops->s4d_step(x, s.ref(), A.data(), C.data(), D.data(), U.data(), Y.data(), n, H, M);
            return cat({&Y, &s.a, &s.b});
          },
          want, tol_rel(want, 2e-5, 2e-5));

    // running_mean: two streams, one with 4 steps behind it (count 4), one fresh; rows A, A, B, A.
    const size_t d = 5;
    const Floats X = randn(n * d, rng), Ma = randn(d, rng);
    Floats Ca = {4.f}, Cb = {0.f}, Mb(d, 0.f);
    std::vector<Doubles> mean = {Doubles(Ma.begin(), Ma.end()), Doubles(d, 0.0)};
    double cnt[2] = {4, 0};
    Doubles wm(n * d);
    for (size_t i = 0; i < n; ++i) {
      const int k = kRowState[i];
      cnt[k] += 1;
      for (size_t j = 0; j < d; ++j) wm[i * d + j] = mean[k][j] = mean[k][j] + (X[i * d + j] - mean[k][j]) / cnt[k];
    }
    want = wm;
    want.insert(want.end(), mean[0].begin(), mean[0].end());
    want.push_back(cnt[0]);
    want.insert(want.end(), mean[1].begin(), mean[1].end());
    want.push_back(cnt[1]);
    check("running_mean",
          [&](const Exec& x) {
            States m(Ma, Mb), c(Ca, Cb);
            Floats Y = X;
            x.backend->ops->running_mean(x, m.ref(), c.ref(), Y.data(), n, d);
            return cat({&Y, &m.a, &c.a, &m.b, &c.b});
          },
          want, tol_rel(want, 2e-6, 1e-6));

    const Floats G = randn(n * 2 * H, rng, 4.f), mu = randn(H, rng);
    Floats sd(H);
    for (float& v : sd) v = 0.1f + std::fabs(randn(1, rng)[0]);
    Doubles wg(n * H), ws(n * H);
    for (size_t i = 0; i < n; ++i)
      for (size_t c = 0; c < H; ++c) {
        wg[i * H + c] = G[i * 2 * H + c] * sigmoid(G[i * 2 * H + H + c]);
        ws[i * H + c] = (double(U[i * H + c]) - mu[c]) / sd[c];
      }
    check("glu",
          [&](const Exec& x) {
            Floats Y(n * H);
            x.backend->ops->glu(x, G.data(), Y.data(), n, H);
            return Y;
          },
          wg, tol_rel(wg, 2e-6, 1e-7));
    check("standardize",
          [&](const Exec& x) {
            Floats Y = U;
            x.backend->ops->standardize(x, Y.data(), mu.data(), sd.data(), n, H);
            return Y;
          },
          ws, tol_rel(ws, 2e-6, 1e-7));
  }

  TEST_CASE("wkv (every mode, key and value sizes apart), wkv7_keys, wkv7_bonus: odd head size, rows of two states") {
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> ud(0.5f, 1.f);
    const size_t H = 2, N = 5, C = H * N, n = 4;
    // The recurrence in double, in each of its four modes (delta term or not, read before or after the
    // update), with K = 5 keys and Vd = 3 values per head and, for the bonus below, K = Vd = N.
    const size_t K = 5, Vd = 3, CK = H * K, CV = H * Vd;
    const Floats Sa = randn(H * Vd * K, rng), Sb = randn(H * Vd * K, rng), rr = randn(n * CK, rng),
                 kk_ = randn(n * CK, rng), vv = randn(n * CV, rng), aa = randn(n * CK, rng, 0.3f),
                 bb_ = randn(n * CK, rng, 0.3f);
    Floats ww(n * CK);
    for (float& x : ww) x = ud(rng);
    for (const bool delta : {true, false})
      for (const bool first : {false, true}) {
        CAPTURE(delta);
        CAPTURE(first);
        std::vector<Doubles> st = {Doubles(Sa.begin(), Sa.end()), Doubles(Sb.begin(), Sb.end())};
        Doubles y(n * CV);
        for (size_t i = 0; i < n; ++i)
          rill_test::wkv_step_double(st[kRowState[i]].data(), rr.data() + i * CK, ww.data() + i * CK, kk_.data() + i * CK,
                          vv.data() + i * CV, delta ? aa.data() + i * CK : nullptr, bb_.data() + i * CK, y.data() + i * CV,
                          H, K, Vd, first);
        Doubles want = y;
        want.insert(want.end(), st[0].begin(), st[0].end());
        want.insert(want.end(), st[1].begin(), st[1].end());
        check("wkv",
              [&](const Exec& x) {
                States s(Sa, Sb);
                Floats Y(n * CV);
                x.backend->ops->wkv(x, s.ref(), rr.data(), ww.data(), kk_.data(), vv.data(), delta ? aa.data() : nullptr,
                                    delta ? bb_.data() : nullptr, Y.data(), n, H, K, Vd, first, nullptr);
                return cat({&Y, &s.a, &s.b});
              },
              want, tol_rel(want, 2e-5, 2e-5));
      }
    const Floats r = randn(n * C, rng), k = randn(n * C, rng), v = randn(n * C, rng);

    // Keys: head 1 of row 0 all zero (the 1e-12 floor of the norm).
    const size_t Hk = 3, Nk = 4, Ck = Hk * Nk, nk = 2;
    Floats K0 = randn(nk * Ck, rng), A0(nk * Ck), k_k = randn(Ck, rng), k_a = randn(Ck, rng);
    for (float& x : A0) x = ud(rng) - 0.5f;
    for (size_t j = 0; j < Nk; ++j) K0[Nk + j] = 0.f;
    Doubles kk(nk * Ck), k2(nk * Ck), na(nk * Ck), bb(nk * Ck);
    for (size_t i = 0; i < nk; ++i)
      for (size_t h = 0; h < Hk; ++h) {
        double ss = 0;
        for (size_t j = 0; j < Nk; ++j) {
          const size_t c = i * Ck + h * Nk + j;
          kk[c] = double(K0[c]) * k_k[h * Nk + j];
          ss += kk[c] * kk[c];
        }
        const double inv = 1 / std::max(std::sqrt(ss), 1e-12);
        for (size_t j = 0; j < Nk; ++j) {
          const size_t c = i * Ck + h * Nk + j, cc = h * Nk + j;
          kk[c] *= inv;
          k2[c] = K0[c] * (1 + (double(A0[c]) - 1) * k_a[cc]);
          na[c] = -kk[c];
          bb[c] = kk[c] * A0[c];
        }
      }
    Doubles want_keys = k2;
    want_keys.insert(want_keys.end(), na.begin(), na.end());
    want_keys.insert(want_keys.end(), bb.begin(), bb.end());
    check("wkv7_keys",
          [&](const Exec& x) {
            Floats K = K0, NA(nk * Ck), B(nk * Ck);
            x.backend->ops->wkv7_keys(x, K.data(), A0.data(), k_k.data(), k_a.data(), NA.data(), B.data(), nk, Hk, Nk);
            return cat({&K, &NA, &B});
          },
          want_keys, tol_rel(want_keys, 1e-5, 1e-6));

    const Floats Y0 = randn(n * C, rng), r_k = randn(C, rng);
    Doubles want_bonus(n * C);
    for (size_t i = 0; i < n; ++i)
      for (size_t h = 0; h < H; ++h) {
        const size_t o = i * C + h * N;
        double bonus = 0;
        for (size_t j = 0; j < N; ++j) bonus += double(r[o + j]) * k[o + j] * r_k[h * N + j];
        for (size_t j = 0; j < N; ++j) want_bonus[o + j] = Y0[o + j] + bonus * v[o + j];
      }
    check("wkv7_bonus",
          [&](const Exec& x) {
            Floats Y = Y0;
            x.backend->ops->wkv7_bonus(x, Y.data(), r.data(), k.data(), r_k.data(), v.data(), n, H, N);
            return Y;
          },
          want_bonus, tol_rel(want_bonus, 1e-5, 1e-5));
  }

  TEST_CASE("delta_keys (Gated DeltaNet): two value heads per key head, a head of zeros, strided rows") {
    std::mt19937 rng(29);
    const size_t n = 3, H = 2, Hv = 4, K = 5, Vd = 3, ldx = 2 * H * K + Hv * Vd + 4, ldb = 7;
    Floats X = randn(n * ldx, rng), dt(n * Hv), A(Hv), Bl = randn(n * ldb, rng, 3.f);
    std::uniform_real_distribution<float> ud(0.01f, 1.f);
    for (float& v : dt) v = ud(rng);
    for (float& v : A) v = -4.f * ud(rng);
    for (size_t j = 0; j < K; ++j) X[ldx + H * K + K + j] = 0.f;  // row 1, key head 1: all zero (the 1e-6 floor)
    const float beta_scale = 2.f;
    Doubles R(n * Hv * K), W(n * Hv * K), Kn(n * Hv * K), B(n * Hv * K), Vo(n * Hv * Vd);
    for (size_t i = 0; i < n; ++i)
      for (size_t hv = 0; hv < Hv; ++hv) {
        const size_t hk = hv / (Hv / H);
        const float *q = X.data() + i * ldx + hk * K, *k = X.data() + i * ldx + H * K + hk * K;
        double sq = 0, sk = 0;
        for (size_t j = 0; j < K; ++j) sq += double(q[j]) * q[j], sk += double(k[j]) * k[j];
        const double alpha = std::exp(double(A[hv]) * dt[i * Hv + hv]),
                     beta = beta_scale / (1 + std::exp(-double(Bl[i * ldb + hv])));
        for (size_t j = 0; j < K; ++j) {
          const size_t o = (i * Hv + hv) * K + j;
          R[o] = q[j] / std::sqrt(sq + 1e-6) / std::sqrt(double(K));
          Kn[o] = k[j] / std::sqrt(sk + 1e-6);
          W[o] = alpha;
          B[o] = -alpha * beta * Kn[o];
        }
        for (size_t c = 0; c < Vd; ++c) Vo[(i * Hv + hv) * Vd + c] = beta * X[i * ldx + 2 * H * K + hv * Vd + c];
      }
    Doubles want = R;
    for (const Doubles* d : {&W, &Kn, &B, &Vo}) want.insert(want.end(), d->begin(), d->end());
    check("delta_keys",
          [&](const Exec& x) {
            Floats r(n * Hv * K), w(n * Hv * K), kn(n * Hv * K), b(n * Hv * K), vo(n * Hv * Vd);
            x.backend->ops->delta_keys(x, X.data(), ldx, dt.data(), A.data(), Bl.data(), ldb, beta_scale, r.data(),
                                       w.data(), kn.data(), b.data(), vo.data(), n, H, Hv, K, Vd);
            return cat({&r, &w, &kn, &b, &vo});
          },
          want, tol_rel(want, 1e-5, 1e-6));
  }

  TEST_CASE("gate_keys (GLA, RetNet): a data-dependent gate with large logits, or fixed per-head decays; strided rows") {
    std::mt19937 rng(31);
    const size_t n = 3, H = 2, K = 5, Vd = 3, ldx = 2 * H * K + H * Vd + 2, ldg = H * K + 3;
    const Floats X = randn(n * ldx, rng);
    Floats G = randn(n * ldg, rng, 4.f);
    G[0] = 40.f, G[1] = -40.f, G[2] = 0.f;
    const Floats gamma = {0.96875f, 0.984375f};
    const float normalizer = 16.f, scale = 0.4472136f;
    for (const bool gated : {true, false}) {
      CAPTURE(gated);
      Doubles R(n * H * K), W(n * H * K), Kn(n * H * K), Vo(n * H * Vd);
      for (size_t i = 0; i < n; ++i) {
        for (size_t c = 0; c < H * K; ++c) {
          R[i * H * K + c] = double(X[i * ldx + c]) * scale;
          Kn[i * H * K + c] = X[i * ldx + H * K + c];
          const double g = G[i * ldg + c];
          W[i * H * K + c] = gated ? std::exp(-std::log1p(std::exp(-g)) / normalizer) : gamma[c / K];
        }
        for (size_t c = 0; c < H * Vd; ++c) Vo[i * H * Vd + c] = X[i * ldx + 2 * H * K + c];
      }
      Doubles want = R;
      for (const Doubles* d : {&W, &Kn, &Vo}) want.insert(want.end(), d->begin(), d->end());
      check("gate_keys",
            [&](const Exec& x) {
              Floats r(n * H * K), w(n * H * K), kn(n * H * K), vo(n * H * Vd);
              x.backend->ops->gate_keys(x, X.data(), ldx, gated ? G.data() : nullptr, ldg, gamma.data(), normalizer,
                                        scale, r.data(), w.data(), kn.data(), vo.data(), n, H, K, Vd);
              return cat({&r, &w, &kn, &vo});
            },
            want, tol_rel(want, 2e-6, 1e-7));
    }
  }

  TEST_CASE("token_shift: six mixes into strided rows, one in place, data-dependent mixes with and without advancing; rows of two states") {
    std::mt19937 rng(18);
    const size_t C = 11, n = 4;
    struct Case {
      size_t k;
      bool dd, advance;
    };
    for (const Case cs : {Case{6, false, true}, Case{1, false, true}, Case{5, true, true}, Case{1, false, false},
                          Case{5, true, false}}) {
      const size_t k = cs.k, ldd = k * C + 3;
      const bool in_place = k == 1 && cs.advance;
      CAPTURE(cs.dd);
      CAPTURE(cs.advance);
      const size_t ldy = in_place ? C : k * C + 5;
      const Floats pa = randn(C, rng), pb = randn(C, rng), U = randn(n * C, rng), mix = randn(k * C, rng),
                   D = randn(n * ldd, rng);
      std::vector<Doubles> st = {Doubles(pa.begin(), pa.end()), Doubles(pb.begin(), pb.end())};
      Doubles y(n * k * C);
      // Stepping: each row sees its own stream's previous input, whether or not the op writes it back.
      std::vector<Doubles> seen = st;
      for (size_t i = 0; i < n; ++i) {
        Doubles& p = seen[kRowState[i]];
        for (size_t c = 0; c < C; ++c) {
          const double u = U[i * C + c];
          for (size_t j = 0; j < k; ++j)
            y[(i * k + j) * C + c] = u + (p[c] - u) * (double(mix[j * C + c]) + (cs.dd ? D[i * ldd + j * C + c] : 0.f));
          p[c] = u;
        }
      }
      if (cs.advance) st = seen;
      Doubles want = y;
      want.insert(want.end(), st[0].begin(), st[0].end());
      want.insert(want.end(), st[1].begin(), st[1].end());
      check(std::string("token_shift k=") + std::to_string(k),
            [&](const Exec& x) {
              States s(pa, pb);
              Floats Uc = U, Y(in_place ? 0 : n * ldy), out;
              float* y_ptr = in_place ? Uc.data() : Y.data();
              x.backend->ops->token_shift(x, s.ref(), Uc.data(), mix.data(), cs.dd ? D.data() : nullptr, ldd, k, y_ptr,
                                          ldy, n, C, cs.advance);
              for (size_t i = 0; i < n; ++i) out.insert(out.end(), y_ptr + i * ldy, y_ptr + i * ldy + k * C);
              return cat({&out, &s.a, &s.b});
            },
            want, tol_rel(want, 1e-6, 1e-6));
    }
  }

  TEST_CASE("gates and activations: softplus_dt (threshold, clamps), act (every kind), add, add_bias, mul, lerp") {
    std::mt19937 rng(19);
    const size_t n = 3, len = 9, ldx = 13;
    Floats X = randn(n * ldx, rng, 8.f);
    X[0] = 25.f, X[1] = -40.f, X[2] = 19.9f;  // past the threshold, deep negative, just below
    const Floats bias = randn(len, rng);
    for (auto lohi : {std::pair<float, float>{-INFINITY, INFINITY}, {0.5f, 3.f}}) {
      Doubles want(n * len);
      for (size_t i = 0; i < n; ++i)
        for (size_t c = 0; c < len; ++c)
          want[i * len + c] = std::min<double>(std::max<double>(softplus(double(X[i * ldx + c] + bias[c])), lohi.first),
                                               lohi.second);
      check("softplus_dt clamp [" + std::to_string(lohi.first) + ", " + std::to_string(lohi.second) + "]",
            [&](const Exec& x) {
              Floats Y(n * len);
              x.backend->ops->softplus_dt(x, X.data(), ldx, bias.data(), Y.data(), n, len, lohi.first, lohi.second);
              return Y;
            },
            want, tol_rel(want, 2e-6, 1e-6));
    }
    const size_t count = 37;
    Floats v = randn(count, rng, 6.f);
    v[0] = 30.f, v[1] = -30.f, v[2] = 0.f;
    const std::pair<Act, std::function<double(double)>> acts[] = {
        {Act::kTanh, [](double t) { return std::tanh(t); }},
        {Act::kSigmoid, sigmoid},
        {Act::kReluSq, [](double t) { return t > 0 ? t * t : 0.0; }},
        {Act::kRwkv7Decay, [](double t) { return std::exp(-std::exp(-0.5) * sigmoid(t)); }},
        {Act::kGeluErf, [](double t) { return 0.5 * t * (1 + std::erf(t / std::sqrt(2.0))); }},
        {Act::kGeluTanh, [](double t) {
           return 0.5 * t * (1 + std::tanh(std::sqrt(2.0 / 3.141592653589793) * (t + 0.044715 * t * t * t)));
         }},
        {Act::kSilu, [](double t) { return t * sigmoid(t); }},
        {Act::kSoftplus, [](double t) { return softplus(t); }},
        {Act::kExpNegExp, [](double t) { return std::exp(-std::exp(t)); }}};
    for (const auto& a : acts) {
      Doubles want(count);
      for (size_t i = 0; i < count; ++i) want[i] = a.second(v[i]);
      check("act " + std::to_string(static_cast<int>(a.first)),
            [&](const Exec& x) {
              Floats Y = v;
              x.backend->ops->act(x, a.first, Y.data(), count);
              return Y;
            },
            want, tol_rel(want, 2e-6, 1e-7));
    }
    const Floats Y0 = randn(n * len, rng), X1 = randn(n * len, rng), T = randn(n * len, rng);
    Doubles w_add(n * len), w_bias(n * len), w_mul(n * len), w_lerp(n * len), w_scale(n * len);
    for (size_t i = 0; i < n * len; ++i) {
      w_add[i] = double(Y0[i]) + X1[i];
      w_scale[i] = double(Y0[i]) * -0.37f;
      w_bias[i] = double(Y0[i]) + bias[i % len];
      w_mul[i] = double(Y0[i]) * X1[i];
      w_lerp[i] = Y0[i] + (double(X1[i]) - Y0[i]) * T[i];
    }
    auto elementwise = [&](const char* name, const Doubles& want, auto op) {
      check(name,
            [&](const Exec& x) {
              Floats Y = Y0;
              op(x, Y.data());
              return Y;
            },
            want, tol_rel(want, 1e-6, 1e-6));
    };
    elementwise("add", w_add, [&](const Exec& x, float* Y) { x.backend->ops->add(x, Y, X1.data(), n * len); });
    elementwise("add_bias", w_bias, [&](const Exec& x, float* Y) { x.backend->ops->add_bias(x, Y, bias.data(), n, len); });
    elementwise("scale", w_scale, [&](const Exec& x, float* Y) { x.backend->ops->scale(x, Y, -0.37f, n * len); });
    elementwise("mul", w_mul, [&](const Exec& x, float* Y) { x.backend->ops->mul(x, Y, X1.data(), n * len); });
    elementwise("lerp", w_lerp, [&](const Exec& x, float* Y) { x.backend->ops->lerp(x, Y, X1.data(), T.data(), n * len); });
  }

  TEST_CASE("positions: each row takes its stream's position, which then counts it") {
    check("positions",
          [&](const Exec& x) {
            int64_t a = 5, b = 100;
            unsigned char* base[4] = {reinterpret_cast<unsigned char*>(&a), reinterpret_cast<unsigned char*>(&a),
                                      reinterpret_cast<unsigned char*>(&b), reinterpret_cast<unsigned char*>(&a)};
            int64_t P[4];
            x.backend->ops->positions(x, StateRef{base, 0}, P, 4);
            return Floats{float(P[0]), float(P[1]), float(P[2]), float(P[3]), float(a), float(b)};
          },
          Doubles{5, 6, 100, 7, 8, 101}, {0.0});
  }

  TEST_CASE("rglru: gates, the sqrt(1 - a^2) input scale and the reset at position 0, rows of two states") {
    std::mt19937 rng(61);
    const size_t W = 13, n = 4;
    const Floats ha = randn(W, rng), hb = randn(W, rng), X = randn(n * W, rng), GX = randn(n * W, rng, 2.f),
                 GA = randn(n * W, rng, 2.f);
    Floats c(W);
    for (size_t j = 0; j < W; ++j) c[j] = 8.f * static_cast<float>(softplus(-3.0 + 0.4 * j));
    const int64_t P[4] = {3, 4, 0, 5};  // row 2 starts stream B
    std::vector<Doubles> h = {Doubles(ha.begin(), ha.end()), Doubles(hb.begin(), hb.end())};
    Doubles want(n * W);
    for (size_t i = 0; i < n; ++i) {
      Doubles& s = h[kRowState[i]];
      for (size_t j = 0; j < W; ++j) {
        const double la = -double(c[j]) * sigmoid(GA[i * W + j]), a = std::exp(la);
        double u = X[i * W + j] * sigmoid(GX[i * W + j]);
        if (P[i] != 0) u *= std::sqrt(1 - a * a);
        s[j] = (P[i] == 0 ? 0.0 : a * s[j]) + u;
        want[i * W + j] = s[j];
      }
    }
    want.insert(want.end(), h[0].begin(), h[0].end());
    want.insert(want.end(), h[1].begin(), h[1].end());
    check("rglru",
          [&](const Exec& x) {
            States s(ha, hb);
            Floats Y(n * W);
            x.backend->ops->rglru(x, s.ref(), X.data(), GX.data(), GA.data(), c.data(), P, Y.data(), n, W);
            return cat({&Y, &s.a, &s.b});
          },
          want, tol_rel(want, 2e-6, 1e-6));
  }

  TEST_CASE("rope: rotate-half on the leading channels of each head, strided rows, large positions") {
    std::mt19937 rng(62);
    const size_t n = 3, heads = 2, D = 10, R = 6, ld = 23;
    const float theta = 10000.f;
    const Floats Y0 = randn(n * ld, rng);
    const int64_t P[3] = {0, 5, 1000};
    Doubles want(Y0.begin(), Y0.end());
    for (size_t i = 0; i < n; ++i)
      for (size_t hd = 0; hd < heads; ++hd)
        for (size_t j = 0; j < R / 2; ++j) {
          const double f = double(P[i]) * std::pow(double(theta), -2.0 * double(j) / double(R));
          const size_t a = i * ld + hd * D + j, b = a + R / 2;
          want[a] = Y0[a] * std::cos(f) - Y0[b] * std::sin(f);
          want[b] = Y0[b] * std::cos(f) + Y0[a] * std::sin(f);
        }
    check("rope",
          [&](const Exec& x) {
            Floats Y = Y0;
            x.backend->ops->rope(x, Y.data(), ld, P, n, heads, D, R, theta);
            return Y;
          },
          want, tol_rel(want, 3e-4, 3e-4));  // f32 angles at position 1000, as transformers computes them
  }

  TEST_CASE("attend: ring writes at position % window, softmax over the filled slots, shared key heads") {
    std::mt19937 rng(63);
    const size_t n = 4, H = 4, KV = 2, D = 6, window = 3, kvd = KV * D;
    const Floats Q = randn(n * H * D, rng), Kn = randn(n * kvd, rng), Vn = randn(n * kvd, rng);
    const int64_t P[4] = {4, 5, 1, 6};  // A full and wrapping; B with two of three slots filled
    for (bool f16 : {false, true}) {
      // ring contents: [window, kvd] per stream, stored as f32 or f16 (bits in a float vector)
      const Floats ka = randn(window * kvd, rng), va = randn(window * kvd, rng), kb = randn(window * kvd, rng),
                   vb = randn(window * kvd, rng);
      auto round = [&](float v) { return f16 ? double(kernels::f16_to_f32(kernels::f32_to_f16(v))) : double(v); };
      auto store = [&](const Floats& v) {
        if (!f16) return v;
        Floats out((v.size() + 1) / 2);
        auto* h = reinterpret_cast<uint16_t*>(out.data());
        for (size_t i = 0; i < v.size(); ++i) h[i] = kernels::f32_to_f16(v[i]);
        return out;
      };
      std::vector<Doubles> rk = {Doubles(), Doubles()}, rv = {Doubles(), Doubles()};
      for (size_t i = 0; i < window * kvd; ++i) {
        rk[0].push_back(round(ka[i])), rv[0].push_back(round(va[i]));
        rk[1].push_back(round(kb[i])), rv[1].push_back(round(vb[i]));
      }
      Doubles want(n * H * D);
      for (size_t i = 0; i < n; ++i) {
        Doubles &K = rk[kRowState[i]], &V = rv[kRowState[i]];
        const size_t slot = size_t(P[i]) % window, filled = std::min<size_t>(size_t(P[i]) + 1, window);
        for (size_t j = 0; j < kvd; ++j) K[slot * kvd + j] = round(Kn[i * kvd + j]), V[slot * kvd + j] = round(Vn[i * kvd + j]);
        for (size_t h = 0; h < H; ++h) {
          const size_t g = h / (H / KV);
          Doubles sc(filled);
          double mx = -1e300, sum = 0;
          for (size_t s = 0; s < filled; ++s) {
            double dot = 0;
            for (size_t j = 0; j < D; ++j) dot += Q[i * H * D + h * D + j] * K[s * kvd + g * D + j];
            sc[s] = dot * 0.4;
            mx = std::max(mx, sc[s]);
          }
          for (double& v : sc) sum += (v = std::exp(v - mx));
          for (size_t j = 0; j < D; ++j) {
            double y = 0;
            for (size_t s = 0; s < filled; ++s) y += sc[s] / sum * V[s * kvd + g * D + j];
            want[i * H * D + h * D + j] = y;
          }
        }
      }
      for (int st = 0; st < 2; ++st) {
        want.insert(want.end(), rk[st].begin(), rk[st].end());
        want.insert(want.end(), rv[st].begin(), rv[st].end());
      }
      check(std::string("attend ") + (f16 ? "f16" : "f32"),
            [&](const Exec& x) {
              States k(store(ka), store(kb)), v(store(va), store(vb));
              Floats Y(n * H * D), scores(H * window);
              x.backend->ops->attend(x, k.ref(), v.ref(), f16, Q.data(), Kn.data(), Vn.data(), P, Y.data(), n, H, KV, D,
                                     window, 0.4f, scores.data());
              auto floats = [&](const Floats& r) {  // a ring back as floats
                Floats f(window * kvd);
                for (size_t i = 0; i < f.size(); ++i)
                  f[i] = f16 ? kernels::f16_to_f32(reinterpret_cast<const uint16_t*>(r.data())[i]) : r[i];
                return f;
              };
              const Floats a_k = floats(k.a), a_v = floats(v.a), b_k = floats(k.b), b_v = floats(v.b);
              return cat({&Y, &a_k, &a_v, &b_k, &b_v});
            },
            want, tol_rel(want, 1e-5, 1e-6));
    }
  }

  // Above kRowSplit elements the CPU's row ops and elementwise ops take their rows (or channels,
  // elements) in ranges of the pool's threads. Every row's arithmetic is the same whoever runs it: the
  // results equal one thread's bit for bit, with the reversed serial ParallelFor (3 slices, last first)
  // and with pthreadpool's 2 threads.
  TEST_CASE("row ops split over a pool (above the split size) leave one thread's bits, on every CPU table") {
    std::mt19937 rng(71);
    ReversedSerial reversed;
    std::vector<const ParallelFor*> pools = {&reversed};
    ThreadPool* tp = nullptr;
    if (ThreadPool::create(2, &tp) == Status::kOk) pools.push_back(tp);
    const size_t n = 40;  // rows; every op below touches more than 16K elements
    const size_t H = 8, N = 64, C = H * N;
    const Floats X = randn(n * 2 * C, rng), w = randn(C, rng), b = randn(C, rng), A = randn(n * C, rng, 0.5f),
                 kk = randn(C, rng), ka = randn(C, rng), mix = randn(2 * C, rng), D = randn(n * 2 * C, rng),
                 G = randn(n * C, rng, 3.f), c = randn(C, rng);
    Floats std_ = randn(C, rng);
    for (float& v : std_) v = std::fabs(v) + 0.5f;
    std::vector<int64_t> P(n);
    for (size_t i = 0; i < n; ++i) P[i] = static_cast<int64_t>(i * 37);
    using Run = std::function<Floats(const Exec&)>;
    auto state_of = [&](Floats* st) {  // every row advances one state
      static unsigned char* base[64];
      for (size_t i = 0; i < n; ++i) base[i] = reinterpret_cast<unsigned char*>(st->data());
      return StateRef{base, 0};
    };
    const std::vector<std::pair<const char*, Run>> ops = {
        {"group_norm", [&](const Exec& x) { Floats Y(X.begin(), X.begin() + n * C); x.backend->ops->group_norm(x, Y.data(), w.data(), b.data(), n, H, N, 1e-5f); return Y; }},
        {"glu", [&](const Exec& x) { Floats Y(n * C); x.backend->ops->glu(x, X.data(), Y.data(), n, C); return Y; }},
        {"standardize", [&](const Exec& x) { Floats Y(X.begin(), X.begin() + n * C); x.backend->ops->standardize(x, Y.data(), w.data(), std_.data(), n, C); return Y; }},
        {"wkv7_keys", [&](const Exec& x) {
           Floats K(X.begin(), X.begin() + n * C), NA(n * C), B(n * C);
           x.backend->ops->wkv7_keys(x, K.data(), A.data(), kk.data(), ka.data(), NA.data(), B.data(), n, H, N);
           return cat({&K, &NA, &B}); }},
        {"wkv7_bonus", [&](const Exec& x) {
           Floats Y(A);
           x.backend->ops->wkv7_bonus(x, Y.data(), X.data(), X.data() + n * C, kk.data(), G.data(), n, H, N);
           return Y; }},
        {"delta_keys", [&](const Exec& x) {  // q, k [2 heads of 64], v [4 heads of 96]: rows of 640 floats
           const size_t Hk = 2, Hv = 4, K = 64, Vd = 96, ldx = 2 * Hk * K + Hv * Vd;
           Floats R(n * Hv * K), W(n * Hv * K), Kn(n * Hv * K), B(n * Hv * K), Vo(n * Hv * Vd);
           x.backend->ops->delta_keys(x, X.data(), ldx, c.data(), w.data(), G.data(), Hv, 2.f, R.data(), W.data(),
                                      Kn.data(), B.data(), Vo.data(), n, Hk, Hv, K, Vd);
           return cat({&R, &W, &Kn, &B, &Vo}); }},
        {"gate_keys", [&](const Exec& x) {  // q, k [4 heads of 64], v [4 heads of 128]: rows of 1024 floats
           const size_t Hh = 4, K = 64, Vd = 128, ldx = 2 * Hh * K + Hh * Vd;
           Floats R(n * Hh * K), W(n * Hh * K), Kn(n * Hh * K), Vo(n * Hh * Vd);
           x.backend->ops->gate_keys(x, X.data(), ldx, G.data(), Hh * K, nullptr, 16.f, 0.125f, R.data(), W.data(),
                                     Kn.data(), Vo.data(), n, Hh, K, Vd);
           return cat({&R, &W, &Kn, &Vo}); }},
        {"rope", [&](const Exec& x) { Floats Y(X.begin(), X.begin() + n * C); x.backend->ops->rope(x, Y.data(), C, P.data(), n, H, N, N, 10000.f); return Y; }},
        {"rglru", [&](const Exec& x) {
           Floats st(C, 0.25f), Y(n * C);
           x.backend->ops->rglru(x, state_of(&st), X.data(), X.data() + n * C, A.data(), c.data(), P.data(), Y.data(), n, C);
           return cat({&Y, &st}); }},
        // The elementwise ops, split since they cost more than waking the pool at prefill sizes: an
        // element a range skips or takes twice changes the result.
        {"add", [&](const Exec& x) { Floats Y(A); x.backend->ops->add(x, Y.data(), X.data(), n * C - 3); return Y; }},
        {"add_bias", [&](const Exec& x) { Floats Y(A); x.backend->ops->add_bias(x, Y.data(), c.data(), n, C); return Y; }},
        {"scale", [&](const Exec& x) { Floats Y(A); x.backend->ops->scale(x, Y.data(), 1.7f, n * C - 3); return Y; }},
        {"mul", [&](const Exec& x) { Floats Y(A); x.backend->ops->mul(x, Y.data(), X.data(), n * C - 3); return Y; }},
        {"lerp", [&](const Exec& x) { Floats Y(A); x.backend->ops->lerp(x, Y.data(), X.data(), G.data(), n * C - 3); return Y; }},
        {"token_shift", [&](const Exec& x) {
           Floats st(C, 0.5f), Y(n * 2 * C);
           x.backend->ops->token_shift(x, state_of(&st), X.data(), mix.data(), D.data(), 2 * C, 2, Y.data(), 2 * C, n, C, true);
           return cat({&Y, &st}); }},
    };
    for (const BackendImpl* be : backends()) {
      if (be->kind != Backend::kCpu) continue;
      for (const auto& [name, run] : ops) {
        CAPTURE(be->name);
        CAPTURE(name);
        const Floats one = run(Exec{be, nullptr, nullptr, nullptr, nullptr});
        for (const ParallelFor* pl : pools) {
          const Floats split = run(Exec{be, pl, nullptr, nullptr, nullptr});
          REQUIRE(split.size() == one.size());
          CHECK(std::memcmp(split.data(), one.data(), one.size() * sizeof(float)) == 0);
        }
      }
    }
    ThreadPool::destroy(tp);
  }
}
