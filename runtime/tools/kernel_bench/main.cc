// rill_kernel_bench [ROWS COLS]: GMAC/s of every vector kernel table this CPU runs, for int8 and int4 (groups
// of 32) products of a ROWS x COLS matrix (default 3072 x 768, an FFN matrix of the 130m shapes), in
// the row layout and in the converter's 16-row layout, for 1, 8, 16 and 32 tokens. Activation quantization
// (prepare_act) is included in the time. Best of 30 runs of 10 products each, one thread; the matrix
// stays in cache, so this is the kernels' arithmetic rate, not memory bandwidth.
//
// rill_kernel_bench --wkv: the wkv recurrence over 64 tokens of one stream (a prefill pass) on the heads
// of the real configs (RWKV-7 0.1B, GLA 340M, Gated DeltaNet 1.3B), token by token against the chunked
// form (kernels.h, WkvScan with a workspace): microseconds per pass, best of 30, one thread.
//
// rill_kernel_bench --ssd: the same for Mamba-2's SSD (kernels.h, Mamba2Ssd) on the heads of Mamba-2 130m and
// Granite 4.0-H 1B and 350M.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "content.h"

using namespace rill::kernels;

// One row of --wkv / --ssd: the best of 30 runs of each form, alternating (call(false) token by token,
// call(true) chunked; reset() before each, untimed), in microseconds per pass, and their ratio.
template <class Reset, class Call>
void time_forms(const char* isa, const char* heads, int width, Reset reset, Call call) {
  double best[2] = {1e30, 1e30};
  for (int rep = 0; rep < 30; ++rep)
    for (int chunked = 0; chunked < 2; ++chunked) {
      reset();
      const auto t0 = std::chrono::steady_clock::now();
      call(chunked != 0);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s < best[chunked]) best[chunked] = s;
    }
  std::printf("%-11s %-*s %12.1f %10.1f %6.2fx\n", isa, width, heads, best[0] * 1e6, best[1] * 1e6, best[0] / best[1]);
}

int wkv_bench() {
  const Table* tables[8];
  const size_t nt = available(tables, 8);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> uw(0.8f, 1.f);
  struct Shape {
    const char* name;
    size_t H, K, V;
    bool delta;
  };
  const Shape shapes[] = {{"rwkv7-0.1B", 12, 64, 64, true},
                          {"gla-340m", 4, 128, 256, false},
                          {"gated-deltanet-1.3b", 6, 256, 512, true}};
  const size_t T = 64;
  std::printf("wkv over %zu tokens of one stream, one thread, us per pass (best of 30)\n", T);
  std::printf("%-11s %-20s %12s %10s %7s\n", "table", "heads (H x K x V)", "token-by-token", "chunked", "ratio");
  for (const Shape& sh : shapes) {
    const size_t CK = sh.H * sh.K, CV = sh.H * sh.V;
    std::vector<float> r(T * CK), w(T * CK), k(T * CK), v(T * CV), a(T * CK), b(T * CK), y(T * CV),
        S0(sh.H * sh.V * sh.K), S(S0.size()), work(sh.H * wkv_chunk_floats(sh.K, sh.V));
    for (auto* vec : {&r, &k, &v, &a, &b}) for (auto& e : *vec) e = nd(rng) * 0.1f;
    for (auto& e : w) e = uw(rng);
    const WkvIo io{r.data(), w.data(), k.data(), v.data(), sh.delta ? a.data() : nullptr, sh.delta ? b.data() : nullptr,
                   y.data()};
    for (size_t ti = 1; ti < nt; ++ti) {
      const Table& t = *tables[ti];
      char heads[64];
      std::snprintf(heads, sizeof heads, "%s %zux%zux%zu", sh.name, sh.H, sh.K, sh.V);
      time_forms(t.isa, heads, 20, [&] { S = S0; }, [&](bool chunked) {
        t.wkv_scan(S.data(), io, T, sh.H, sh.K, sh.V, false, chunked ? work.data() : nullptr, 0, sh.H);
      });
    }
  }
  return 0;
}

int ssd_bench() {
  const Table* tables[8];
  const size_t nt = available(tables, 8);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> udt(0.001f, 0.1f);
  struct Shape {
    const char* name;
    size_t H, P, N, G;
  };
  const Shape shapes[] = {{"mamba2-130m", 24, 64, 128, 1},
                          {"granite-4.0-h-1b", 48, 64, 128, 1},
                          {"granite-4.0-h-350m", 48, 32, 128, 1}};
  const size_t T = 64;
  std::printf("ssd over %zu tokens of one stream, one thread, us per pass (best of 30)\n", T);
  std::printf("%-11s %-28s %12s %10s %7s\n", "table", "heads (H x P x N, groups)", "token-by-token", "chunked",
              "ratio");
  for (const Shape& sh : shapes) {
    const size_t E = sh.H * sh.P, ld = E + 2 * sh.G * sh.N;
    std::vector<float> X(T * ld), dt(T * sh.H), A(sh.H), D(E), y(T * E), S0(sh.H * sh.P * sh.N), S(S0.size()),
        work(sh.H * ssd_chunk_floats(sh.P));
    for (auto* vec : {&X, &D, &S0}) for (auto& e : *vec) e = nd(rng) * 0.1f;
    for (auto& e : dt) e = udt(rng);
    for (auto& e : A) e = -std::exp(nd(rng));
    for (size_t ti = 1; ti < nt; ++ti) {
      const Table& t = *tables[ti];
      char heads[64];
      std::snprintf(heads, sizeof heads, "%s %zux%zux%zu, %zu", sh.name, sh.H, sh.P, sh.N, sh.G);
      time_forms(t.isa, heads, 28, [&] { S = S0; }, [&](bool chunked) {
        t.mamba2_ssd(S.data(), X.data(), X.data() + E, X.data() + E + sh.G * sh.N, ld, dt.data(), A.data(), D.data(),
                     y.data(), T, sh.H, sh.P, sh.N, sh.G, chunked ? work.data() : nullptr, 0, sh.H);
      });
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--wkv") return wkv_bench();
  if (argc == 2 && std::string(argv[1]) == "--ssd") return ssd_bench();
  if (argc == 2 || argc > 3 || (argc > 1 && argv[1][0] == '-')) {
    std::fprintf(stderr, "usage: rill_kernel_bench [ROWS COLS]   (COLS a multiple of 32; default 3072 768)\n"
                 "       rill_kernel_bench --wkv        (the wkv recurrence against its chunked form)\n"
                 "       rill_kernel_bench --ssd        (Mamba-2's SSD recurrence against its chunked form)\n");
    return 2;
  }
  const size_t R = argc == 3 ? std::strtoul(argv[1], nullptr, 10) : 3072;
  const size_t C = argc == 3 ? std::strtoul(argv[2], nullptr, 10) : 768;
  if (R == 0 || C == 0 || C % 32 != 0 || R > (1u << 16) || C > (1u << 16)) {
    std::fprintf(stderr, "rill_kernel_bench: ROWS in [1, 65536], COLS a multiple of 32 up to 65536\n");
    return 2;
  }
  const Table* tables[8];
  const size_t nt = available(tables, 8);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  const size_t kMaxT = 32;
  std::vector<float> W(R * C), X(kMaxT * C), Y(kMaxT * R);
  for (auto& v : W) v = nd(rng);
  for (auto& v : X) v = nd(rng);
  std::printf("%zu x %zu, one thread, GMAC/s (best of 30)\n", R, C);
  std::printf("%-11s %-5s %6s %10s %10s\n", "table", "dtype", "tokens", "rows", "rows16");
  for (int bits : {8, 4}) {
    const uint32_t g = bits == 8 ? static_cast<uint32_t>(C) : 32;
    std::vector<uint8_t> d0, s0, d1, s1;
    rill::convert::quantize_matrix(W, R, C, bits, g, false, &d0, &s0);
    rill::convert::quantize_matrix(W, R, C, bits, g, true, &d1, &s1);
    for (size_t ti = 1; ti < nt; ++ti) {  // tables[0] is the scalar reference
      const Table& t = *tables[ti];
      for (size_t T : {size_t(1), size_t(8), size_t(16), kMaxT}) {
        std::vector<unsigned char> work(prepare_act_bytes(T, C) + 64);
        unsigned char* w = work.data() + (64 - reinterpret_cast<uintptr_t>(work.data()) % 64) % 64;
        double best[2] = {1e30, 1e30};
        for (int layout = 0; layout < 2; ++layout)
          for (int rep = 0; rep < 30; ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            for (int k = 0; k < 10; ++k) {
              QAct a = float_act(X.data(), C);
              if (t.prepare_act) t.prepare_act(X.data(), C, T, C, layout == 0 && bits == 4 ? g : 0, w, &a, 0, T);
              const auto* sf = reinterpret_cast<const float*>(bits == 8 ? (layout ? s1 : s0).data() : nullptr);
              const auto* sh = reinterpret_cast<const uint16_t*>((layout ? s1 : s0).data());
              if (layout == 1 && bits == 8) t.matmul_q8x16(d1.data(), sf, a, Y.data(), R, R - R % 16, C, T);
              if (layout == 1 && bits == 4) t.matmul_q4x16(d1.data(), sh, g, a, Y.data(), R, R - R % 16, C, T);
              if (layout == 0 && bits == 8 && T == 1) t.matvec_q8(reinterpret_cast<const int8_t*>(d0.data()), sf, a, Y.data(), R, C);
              if (layout == 0 && bits == 8 && T > 1)
                t.matmul_q8(reinterpret_cast<const int8_t*>(d0.data()), sf, a, Y.data(), R, R, C, T);
              if (layout == 0 && bits == 4 && T == 1) t.matvec_q4(d0.data(), sh, g, a, Y.data(), R, C);
              if (layout == 0 && bits == 4 && T > 1) t.matmul_q4(d0.data(), sh, g, a, Y.data(), R, R, C, T);
            }
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10;
            if (s < best[layout]) best[layout] = s;
          }
        const double rows16 = static_cast<double>(R - R % 16);
        std::printf("%-11s q%-4d %6zu %10.1f %10.1f\n", t.isa, bits, T, R * C * T / best[0] / 1e9,
                    rows16 * C * T / best[1] / 1e9);
      }
    }
  }
  return 0;
}
