// rill_xnnpack_bench: XNNPACK's fully-connected operators against rill's own product kernels, on the
// projection shapes of the 130m and 1.4B models, one thread. Built only where Debian's libxnnpack-dev
// is installed; rill itself does not link XNNPACK (docs/performance.md gives the figures).
//
//   f32: xnn_create_fully_connected_nc_f32 vs rill matmul_f32 (f32 weights).
//   f16: xnn_create_fully_connected_nc_f16 (f16 in and out) vs rill matmul_f16 (f16 weights, f32 in/out).
//   q8:  xnn_create_fully_connected_nc_qs8 (one scale for the whole matrix and for the input, int8 out)
//        vs rill matmul_q8 (a scale per row, int8 activations per 32-block quantized inside, f32 out).
//        XNNPACK's form cannot hold rill's per-row scales: it is timed as a lower bound only.
// Packed bytes: what XNNPACK allocates when it creates the operator (its own copy of the weights).
//
// usage: rill_xnnpack_bench [TOKENS...]     (default: 1 32 128)
//        rill_xnnpack_bench --count KERNEL SHAPE TOKENS REPS
//   Runs one product REPS times and nothing else, for counting instructions under qemu (where time means
//   nothing): two counts that differ only in REPS give the instructions of one call, without the
//   operator's creation and weight packing. KERNEL: rill-f32 | xnn-f32 | rill-f16 | xnn-f16 | rill-q8 |
//   rill-q8x16 (the converter's 16-row layout) | xnn-q8; SHAPE: 0..3 (the table's rows, in order).
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace {

using rill::kernels::QAct;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Counts the bytes XNNPACK asks for (the packed weights are most of what an operator allocates).
size_t g_allocated = 0;
void* xa_alloc(void*, size_t n) {
  g_allocated += n;
  return std::malloc(n);
}
void* xa_realloc(void*, void* p, size_t n) {
  g_allocated += n;
  return std::realloc(p, n);
}
void xa_free(void*, void* p) { std::free(p); }
void* xa_aligned(void*, size_t align, size_t n) {
  g_allocated += n;
  void* p = nullptr;
  return posix_memalign(&p, std::max(align, sizeof(void*)), n) == 0 ? p : nullptr;
}
const xnn_allocator kAllocator = {nullptr, xa_alloc, xa_realloc, xa_free, xa_aligned, xa_free};

// Best time of `reps` runs of fn (seconds), after one warm-up.
template <class Fn>
double best_of(int reps, Fn fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s();
    fn();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

struct Shape {
  const char* name;
  size_t in, out;
};
const Shape shapes[] = {{"130m in_proj (768 -> 3072)", 768, 3072},
                        {"130m out_proj (1536 -> 768)", 1536, 768},
                        {"1.4b in_proj (2048 -> 8192)", 2048, 8192},
                        {"1.4b out_proj (4096 -> 2048)", 4096, 2048}};

void* aligned(size_t bytes) {
  void* p = nullptr;
  return posix_memalign(&p, 64, (bytes + 63) / 64 * 64) == 0 ? p : nullptr;
}

}  // namespace

int count_mode(int argc, char** argv);

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--count") == 0) return count_mode(argc, argv);
  std::vector<size_t> tokens;
  for (int i = 1; i < argc; ++i) {
    const long v = std::strtol(argv[i], nullptr, 10);
    if (v < 1 || v > 4096) {
      std::fprintf(stderr, "usage: rill_xnnpack_bench [TOKENS...]   (each 1 to 4096; default 1 32 128)\n");
      return 2;
    }
    tokens.push_back(static_cast<size_t>(v));
  }
  if (tokens.empty()) tokens = {1, 32, 128};
  if (xnn_initialize(&kAllocator) != xnn_status_success) {
    std::fprintf(stderr, "rill_xnnpack_bench: xnn_initialize failed (unsupported CPU?)\n");
    return 1;
  }
  const rill::kernels::Table& t = rill::kernels::active();
  std::printf("rill kernels: %s; XNNPACK: Debian libxnnpack-dev (2022); one thread; best of 5 runs\n\n", t.isa);
  std::printf("| shape | tokens | dtype | rill ms | XNNPACK ms | XNNPACK / rill time | weight bytes | XNNPACK packed bytes |\n"
              "|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (const Shape& s : shapes) {
    const size_t K = s.in, N = s.out;
    std::vector<float> W(N * K), bias(N, 0.f);
    for (float& v : W) v = nd(rng) * 0.05f;
    std::vector<uint16_t> W16(N * K), bias16(N, 0);
    for (size_t i = 0; i < W.size(); ++i) W16[i] = rill::kernels::f32_to_f16(W[i]);
    std::vector<int8_t> W8(N * K);
    std::vector<float> rs(N);
    for (size_t r = 0; r < N; ++r) {
      float m = 0;
      for (size_t c = 0; c < K; ++c) m = std::max(m, std::fabs(W[r * K + c]));
      rs[r] = m / 127.f;
      for (size_t c = 0; c < K; ++c) W8[r * K + c] = static_cast<int8_t>(std::lrint(W[r * K + c] / rs[r]));
    }
    std::vector<int32_t> bias32(N, 0);
    for (size_t T : tokens) {
      std::vector<float> X(T * K), Y(T * N);
      for (float& v : X) v = nd(rng);
      std::vector<uint16_t> X16(T * K), Y16(T * N);
      for (size_t i = 0; i < X.size(); ++i) X16[i] = rill::kernels::f32_to_f16(X[i]);
      std::vector<int8_t> X8(T * K), Y8(T * N);
      for (size_t i = 0; i < X.size(); ++i) X8[i] = static_cast<int8_t>(std::max(-127.f, std::min(127.f, X[i] * 32.f)));
      unsigned char* work = static_cast<unsigned char*>(aligned(rill::kernels::prepare_act_bytes(T, K)));
      auto row = [&](const char* dtype, double rill_s, double xnn_s, size_t wbytes, size_t packed) {
        char xs[32] = "unsupported", ratio[32] = "-", pk[32] = "-";
        if (xnn_s > 0) {
          std::snprintf(xs, sizeof xs, "%.3f", xnn_s * 1e3);
          std::snprintf(ratio, sizeof ratio, "%.2f", xnn_s / rill_s);
          std::snprintf(pk, sizeof pk, "%zu", packed);
        }
        std::printf("| %s | %zu | %s | %.3f | %s | %s | %zu | %s |\n", s.name, T, dtype, rill_s * 1e3, xs, ratio, wbytes,
                    pk);
        std::fflush(stdout);
      };
      // f32
      {
        const double r = best_of(5, [&] {
          if (T == 1) t.matvec_f32(W.data(), X.data(), Y.data(), N, K);
          else t.matmul_f32(W.data(), X.data(), K, Y.data(), N, N, K, T);
        });
        xnn_operator_t op = nullptr;
        g_allocated = 0;
        double x = 0;
        size_t packed = 0;
        if (xnn_create_fully_connected_nc_f32(K, N, K, N, W.data(), bias.data(), -INFINITY, INFINITY, 0, &op) ==
                xnn_status_success &&
            xnn_setup_fully_connected_nc_f32(op, T, X.data(), Y.data(), nullptr) == xnn_status_success) {
          packed = g_allocated;
          x = best_of(5, [&] { xnn_run_operator(op, nullptr); });
        }
        if (op) xnn_delete_operator(op);
        row("f32", r, x, W.size() * 4, packed);
      }
      // f16
      {
        const double r = best_of(5, [&] {
          if (T == 1) t.matvec_f16(W16.data(), X.data(), Y.data(), N, K);
          else t.matmul_f16(W16.data(), X.data(), K, Y.data(), N, N, K, T);
        });
        xnn_operator_t op = nullptr;
        g_allocated = 0;
        double x = 0;
        size_t packed = 0;
        if (xnn_create_fully_connected_nc_f16(K, N, K, N, W16.data(), bias16.data(), -INFINITY, INFINITY, 0, &op) ==
                xnn_status_success &&
            xnn_setup_fully_connected_nc_f16(op, T, X16.data(), Y16.data(), nullptr) == xnn_status_success) {
          packed = g_allocated;
          x = best_of(5, [&] { xnn_run_operator(op, nullptr); });
        }
        if (op) xnn_delete_operator(op);
        row("f16", r, x, W16.size() * 2, packed);
      }
      // q8: rill's includes quantizing the activations (prepare_act)
      {
        const double r = best_of(5, [&] {
          QAct a = rill::kernels::float_act(X.data(), K);
          if (t.prepare_act) t.prepare_act(X.data(), K, T, K, 0, work, &a, 0, T);
          if (T == 1) t.matvec_q8(W8.data(), rs.data(), a, Y.data(), N, K);
          else t.matmul_q8(W8.data(), rs.data(), a, Y.data(), N, N, K, T);
        });
        xnn_operator_t op = nullptr;
        g_allocated = 0;
        double x = 0;
        size_t packed = 0;
        if (xnn_create_fully_connected_nc_qs8(K, N, K, N, 0, 1.f / 32.f, 0.01f, W8.data(), bias32.data(), 0, 0.05f,
                                              -127, 127, 0, &op) == xnn_status_success &&
            xnn_setup_fully_connected_nc_qs8(op, T, X8.data(), Y8.data(), nullptr) == xnn_status_success) {
          packed = g_allocated;
          x = best_of(5, [&] { xnn_run_operator(op, nullptr); });
        }
        if (op) xnn_delete_operator(op);
        row("q8 (XNNPACK: per-tensor qs8)", r, x, W8.size() + N * 4, packed);
      }
      std::free(work);
    }
  }
  xnn_deinitialize();
  return 0;
}

int count_mode(int argc, char** argv) {
  const char* usage = "usage: rill_xnnpack_bench --count KERNEL SHAPE TOKENS REPS (see the file's header)\n";
  if (argc != 6) {
    std::fputs(usage, stderr);
    return 2;
  }
  const std::string kernel = argv[2];
  const long si = std::strtol(argv[3], nullptr, 10), T = std::strtol(argv[4], nullptr, 10),
             reps = std::strtol(argv[5], nullptr, 10);
  if (si < 0 || si > 3 || T < 1 || T > 4096 || reps < 0) {
    std::fputs(usage, stderr);
    return 2;
  }
  if (xnn_initialize(&kAllocator) != xnn_status_success) return 1;
  const rill::kernels::Table& t = rill::kernels::active();
  const size_t K = shapes[si].in, N = shapes[si].out;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> W(N * K), bias(N, 0.f), X(T * K), Y(T * N), rs(N);
  for (float& v : W) v = nd(rng) * 0.05f;
  for (float& v : X) v = nd(rng);
  std::vector<uint16_t> W16(N * K), X16(T * K), Y16(T * N), bias16(N, 0);
  for (size_t i = 0; i < W.size(); ++i) W16[i] = rill::kernels::f32_to_f16(W[i]);
  for (size_t i = 0; i < X.size(); ++i) X16[i] = rill::kernels::f32_to_f16(X[i]);
  std::vector<int8_t> W8(N * K), X8(T * K), Y8(T * N);
  for (size_t r = 0; r < N; ++r) {
    float m = 0;
    for (size_t c = 0; c < K; ++c) m = std::max(m, std::fabs(W[r * K + c]));
    rs[r] = m / 127.f;
    for (size_t c = 0; c < K; ++c) W8[r * K + c] = static_cast<int8_t>(std::lrint(W[r * K + c] / rs[r]));
  }
  for (size_t i = 0; i < X.size(); ++i) X8[i] = static_cast<int8_t>(std::max(-127.f, std::min(127.f, X[i] * 32.f)));
  std::vector<uint8_t> Wx16(N * K);
  rill::kernels::q8_to_x16(W8.data(), N, K, Wx16.data());
  std::vector<int32_t> bias32(N, 0);
  unsigned char* work = static_cast<unsigned char*>(aligned(rill::kernels::prepare_act_bytes(T, K)));
  auto act = [&] {
    QAct a = rill::kernels::float_act(X.data(), K);
    if (t.prepare_act) t.prepare_act(X.data(), K, T, K, 0, work, &a, 0, T);
    return a;
  };
  xnn_operator_t op = nullptr;
  xnn_status st = xnn_status_success;
  if (kernel == "xnn-f32") {
    st = xnn_create_fully_connected_nc_f32(K, N, K, N, W.data(), bias.data(), -INFINITY, INFINITY, 0, &op);
    if (st == xnn_status_success) st = xnn_setup_fully_connected_nc_f32(op, T, X.data(), Y.data(), nullptr);
  } else if (kernel == "xnn-f16") {
    st = xnn_create_fully_connected_nc_f16(K, N, K, N, W16.data(), bias16.data(), -INFINITY, INFINITY, 0, &op);
    if (st == xnn_status_success) st = xnn_setup_fully_connected_nc_f16(op, T, X16.data(), Y16.data(), nullptr);
  } else if (kernel == "xnn-q8") {
    st = xnn_create_fully_connected_nc_qs8(K, N, K, N, 0, 1.f / 32.f, 0.01f, W8.data(), bias32.data(), 0, 0.05f, -127,
                                           127, 0, &op);
    if (st == xnn_status_success) st = xnn_setup_fully_connected_nc_qs8(op, T, X8.data(), Y8.data(), nullptr);
  } else if (kernel != "rill-f32" && kernel != "rill-f16" && kernel != "rill-q8" && kernel != "rill-q8x16") {
    std::fputs(usage, stderr);
    return 2;
  }
  if (st != xnn_status_success) {
    std::fprintf(stderr, "rill_xnnpack_bench: XNNPACK cannot run %s here\n", kernel.c_str());
    return 1;
  }
  for (long i = 0; i < reps; ++i) {
    if (op) {
      xnn_run_operator(op, nullptr);
    } else if (kernel == "rill-f32") {
      t.matmul_f32(W.data(), X.data(), K, Y.data(), N, N, K, T);
    } else if (kernel == "rill-f16") {
      t.matmul_f16(W16.data(), X.data(), K, Y.data(), N, N, K, T);
    } else if (kernel == "rill-q8") {
      t.matmul_q8(W8.data(), rs.data(), act(), Y.data(), N, N, K, T);
    } else {
      t.matmul_q8x16(Wx16.data(), rs.data(), act(), Y.data(), N, N, K, T);
    }
  }
  if (op) xnn_delete_operator(op);
  std::printf("%s on %s, %ld tokens, %ld calls; table %s\n", kernel.c_str(), shapes[si].name, T, reps, t.isa);
  std::free(work);
  xnn_deinitialize();
  return 0;
}
