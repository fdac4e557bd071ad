// rill bench: the machine's read bandwidth (what a decode step's share is measured against), the bytes
// one step moves, and resident memory.
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdio>
#include <thread>

#include "bench.h"

namespace rill {
namespace cli {

namespace {

// Sums [b, e) of 64-bit words; where the CPU has AVX2, with 256-bit loads from two halves of the range
// at once, prefetching 2 KiB ahead, as the product kernels read several rows with prefetch (one plain
// sequential stream read 30-40 % less than a decode step did on a Sapphire Rapids VM).
#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t* p, size_t b, size_t e) {
  const size_t half = (e - b) / 2 / 8 * 8;
  const uint64_t* q0 = p + b;
  const uint64_t* q1 = q0 + half;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  for (size_t i = 0; i < half; i += 8) {
    _mm_prefetch(reinterpret_cast<const char*>(q0 + i) + 2048, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(q1 + i) + 2048, _MM_HINT_T0);
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

uint64_t sum_words(const uint64_t* p, size_t b, size_t e) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return sum_words_avx2(p, b, e);
#endif
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = b;
  for (; i + 4 <= e; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
  for (; i < e; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace

double probe_read_gbs(size_t bytes, int threads) {
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    std::vector<uint64_t> sums(threads, 0);
    const double t0 = now_s();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const size_t b = n / threads * t, e = t + 1 == threads ? n : n / threads * (t + 1);
        sums[t] = sum_words(buf.data(), b, e);
      });
    for (auto& th : pool) th.join();
    const double dt = now_s() - t0;
    volatile uint64_t sink = 0;
    for (uint64_t v : sums) sink = sink + v;
    best = std::max(best, bytes / dt / 1e9);
  }
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
