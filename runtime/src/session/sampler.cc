// Sampling over caller-provided candidate storage: greedy, temperature, top-k, top-p, seeded.
// No allocation: std::partial_sort / std::nth_element / std::sort work in place.
#include <algorithm>
#include <cmath>

#include "rill/rill.hpp"

namespace rill {

namespace {
uint64_t splitmix64(uint64_t* x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

Status Sampler::init(const SamplerParams& p, Candidate* scratch, size_t scratch_count) {
  if (!(p.temperature >= 0.f) || !(p.top_p > 0.f && p.top_p <= 1.f) || p.top_k < 0)
    return Status::kInvalidArgument;
  if (!scratch && scratch_count) return Status::kInvalidArgument;
  p_ = p;
  cand_ = scratch;
  cap_ = scratch_count;
  reseed(p.seed);
  return Status::kOk;
}

void Sampler::reseed(uint64_t seed) {
  uint64_t s = seed;
  rng_[0] = splitmix64(&s);
  rng_[1] = splitmix64(&s);
}

float Sampler::next_uniform() {  // xoroshiro128+, 24 high bits -> [0, 1)
  const uint64_t s0 = rng_[0];
  uint64_t s1 = rng_[1];
  const uint64_t r = s0 + s1;
  s1 ^= s0;
  rng_[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
  rng_[1] = (s1 << 37) | (s1 >> 27);
  return static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
}

int32_t Sampler::sample(const float* logits, size_t n, size_t n_valid) {
  if (n_valid > n) n_valid = n;
  if (n_valid == 0) return -1;
  // Greedy: argmax over finite logits (first on ties).
  if (p_.temperature == 0.f) {
    size_t best = 0;
    for (size_t i = 1; i < n_valid; ++i)
      if (logits[i] > logits[best] || std::isnan(logits[best])) best = i;
    return static_cast<int32_t>(best);
  }
  if (cap_ < n_valid) return -1;  // scratch too small for this vocabulary: caller error
  size_t m = n_valid;
  for (size_t i = 0; i < m; ++i) cand_[i] = Candidate{std::isnan(logits[i]) ? -INFINITY : logits[i], static_cast<int32_t>(i)};
  auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < m) {
    std::partial_sort(cand_, cand_ + p_.top_k, cand_ + m, by_logit);
    m = static_cast<size_t>(p_.top_k);
  } else {
    std::sort(cand_, cand_ + m, by_logit);
  }
  // Softmax with temperature over the m candidates (sorted, max first).
  const float mx = cand_[0].logit;
  const float inv_t = 1.f / p_.temperature;
  double sum = 0.0;
  for (size_t i = 0; i < m; ++i) {
    const float e = std::exp((cand_[i].logit - mx) * inv_t);
    cand_[i].logit = e;  // reuse the slot for the unnormalised probability
    sum += e;
  }
  if (p_.top_p < 1.f) {
    double cum = 0.0;
    size_t keep = m;
    for (size_t i = 0; i < m; ++i) {
      cum += cand_[i].logit / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    m = keep;
    sum = 0.0;
    for (size_t i = 0; i < m; ++i) sum += cand_[i].logit;
  }
  const double r = static_cast<double>(next_uniform()) * sum;
  double acc = 0.0;
  for (size_t i = 0; i < m; ++i) {
    acc += cand_[i].logit;
    if (r < acc) return cand_[i].id;
  }
  return cand_[m - 1].id;
}

}  // namespace rill
