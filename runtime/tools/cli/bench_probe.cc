// rill bench: the machine's read bandwidth (what a decode step's share is measured against), the bytes
// one step moves, and resident memory.
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "bench.h"

namespace rill {
namespace cli {

namespace {

// Sums [b, e) of 64-bit words as a decode step's products read weights: 64-byte loads (AVX-512 where
// the CPU has it, else AVX2), from two halves of the range at once, with a software prefetch Ahead
// bytes ahead, as the product kernels read several rows with prefetch (one plain sequential stream
// read 30-40 % less than a decode step did on a Sapphire Rapids VM). Which distance reads fastest
// depends on the machine (on a Zen 4 VM, 136 MiB: none 35, 1 KiB 39-41, 4 KiB 42-47 GB/s), so the
// passes alternate between 1 and 4 KiB and the best is kept.
#if defined(__x86_64__)
template <size_t Ahead>
__attribute__((target("avx512f"))) uint64_t sum_words_avx512(const uint64_t* p, size_t b, size_t e) {
  const size_t half = (e - b) / 2 / 8 * 8;
  const uint64_t* q0 = p + b;
  const uint64_t* q1 = q0 + half;
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  for (size_t i = 0; i < half; i += 8) {
    _mm_prefetch(reinterpret_cast<const char*>(q0 + i) + Ahead, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(q1 + i) + Ahead, _MM_HINT_T0);
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(q0 + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(q1 + i));
  }
  alignas(64) uint64_t t[8];
  _mm512_store_si512(t, _mm512_add_epi64(a0, a1));
  uint64_t s = 0;
  for (uint64_t v : t) s += v;
  for (size_t i = b + 2 * half; i < e; ++i) s += p[i];
  return s;
}

template <size_t Ahead>
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t* p, size_t b, size_t e) {
  const size_t half = (e - b) / 2 / 8 * 8;
  const uint64_t* q0 = p + b;
  const uint64_t* q1 = q0 + half;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  for (size_t i = 0; i < half; i += 8) {
    _mm_prefetch(reinterpret_cast<const char*>(q0 + i) + Ahead, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(q1 + i) + Ahead, _MM_HINT_T0);
    a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0 + i)),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0 + i + 4))));
    a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q1 + i)),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q1 + i + 4))));
  }
  alignas(32) uint64_t t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_add_epi64(a0, a1));
  uint64_t s = t[0] + t[1] + t[2] + t[3];
  for (size_t i = b + 2 * half; i < e; ++i) s += p[i];
  return s;
}
#endif

using SumFn = uint64_t (*)(const uint64_t*, size_t, size_t);

uint64_t sum_words_plain(const uint64_t* p, size_t b, size_t e) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = b;
  for (; i + 4 <= e; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
  for (; i < e; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

// The reader of pass `pass`: prefetching 1 KiB ahead in even passes, 4 KiB in odd ones.
SumFn pick_sum(int pass) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return pass % 2 ? sum_words_avx512<4096> : sum_words_avx512<1024>;
  if (__builtin_cpu_supports("avx2")) return pass % 2 ? sum_words_avx2<4096> : sum_words_avx2<1024>;
#endif
  (void)pass;
  return sum_words_plain;
}

}  // namespace

// The buffer is read as a decode step reads its weights: as matrices of kMatrix bytes one after
// another, each split into one contiguous slice per thread (as the pool splits a product's rows).
// The threads start once and wait on a spinning counter, so no pass times a thread's creation; each
// pass is timed from its start to the last thread's end, and the best of kPasses is kept (before, one
// thread per pass was created inside the timing: 2-thread probes of 87 MiB read 43-45 GB/s where this
// reads 80-88, and a decode step's share came out above 100 %).
double probe_read_gbs(size_t bytes, int threads) {
  constexpr size_t kMatrix = size_t(2) << 20;
  constexpr int kPasses = 9;
  const size_t n = bytes / sizeof(uint64_t), per_matrix = kMatrix / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  std::atomic<int> pass{-1}, done{0};
  std::vector<uint64_t> sums(threads, 0);
  auto work = [&](int t, int p) {
    const SumFn sum = pick_sum(p);
    uint64_t acc = 0;
    for (size_t m = 0; m < n; m += per_matrix) {
      const size_t len = std::min(per_matrix, n - m);
      acc += sum(buf.data() + m, len / threads * t, t + 1 == threads ? len : len / threads * (t + 1));
    }
    sums[t] += acc;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int seen = 0; seen < kPasses; ++seen) {
        while (pass.load(std::memory_order_acquire) < seen) std::this_thread::yield();
        work(t, seen);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  double best = 0;
  for (int p = 0; p < kPasses; ++p) {
    done.store(0, std::memory_order_relaxed);
    const double t0 = now_s();
    pass.store(p, std::memory_order_release);
    work(0, p);
    while (done.load(std::memory_order_acquire) < threads - 1) std::this_thread::yield();
    const double dt = now_s() - t0;
    best = std::max(best, bytes / dt / 1e9);
  }
  for (auto& th : pool) th.join();
  volatile uint64_t sink = 0;
  for (uint64_t v : sums) sink = sink + v;
  return best;
}

uint64_t bytes_per_token(const fb::Model* m) {
  bool has_head = false;
  for (const fb::Tensor* t : *m->tensors()) has_head |= t->name()->str() == "head";
  uint64_t total = 0;
  auto add = [&](const fb::Tensor* t) {
    const uint64_t b = t->size() + (t->quant() ? t->quant()->scales_size() : 0);
    if (t->name()->str() == "embedding" && has_head) total += b / t->shape()->Get(0);
    else total += b;
  };
  for (const fb::Tensor* t : *m->tensors()) add(t);
  for (const fb::Layer* l : *m->layers())
    for (const fb::Tensor* t : *l->tensors()) add(t);
  return total;
}

uint64_t rss_bytes() {
  unsigned long long pages_total = 0, pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%llu %llu", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace cli
}  // namespace rill
