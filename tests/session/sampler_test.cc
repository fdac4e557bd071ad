// Sampling: greedy, temperature, top-k, top-p, seeding, padding rows; frequencies against softmax.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "rill/rill.hpp"

using namespace rill;

namespace {
std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, size_t n_valid, int draws) {
  std::vector<double> f(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const int32_t t = s.sample(logits.data(), logits.size(), n_valid);
    REQUIRE(t >= 0);
    f[static_cast<size_t>(t)] += 1.0 / draws;
  }
  return f;
}
std::vector<double> softmax(const std::vector<float>& l, double temp) {
  std::vector<double> p(l.size());
  double z = 0;
  for (size_t i = 0; i < l.size(); ++i) z += p[i] = std::exp(l[i] / temp);
  for (double& v : p) v /= z;
  return p;
}
}  // namespace

TEST_SUITE("sampler") {
  TEST_CASE("greedy is argmax over the valid ids") {
    std::vector<Sampler::Candidate> c(8);
    Sampler s;
    SamplerParams p;
    p.temperature = 0;
    REQUIRE(s.init(p, c.data(), c.size()) == Status::kOk);
    std::vector<float> l = {0.1f, 3.f, -1.f, 3.f, 2.f, 9.f};
    CHECK(s.sample(l.data(), l.size(), l.size()) == 5);
    CHECK(s.sample(l.data(), l.size(), 5) == 1);  // id 5 is padding here; first of the tied maxima
    CHECK(s.sample(l.data(), l.size(), 0) == -1);
  }

  TEST_CASE("temperature sampling matches softmax frequencies; seeds reproduce") {
    const std::vector<float> l = {0.f, 1.f, 2.f, 3.f};
    std::vector<Sampler::Candidate> c(4);
    for (double temp : {1.0, 0.5, 2.0}) {
      Sampler s;
      SamplerParams p;
      p.temperature = static_cast<float>(temp);
      p.top_k = 0;
      p.top_p = 1.f;
      p.seed = 123;
      REQUIRE(s.init(p, c.data(), c.size()) == Status::kOk);
      const auto f = frequencies(s, l, 4, 200000);
      const auto q = softmax(l, temp);
      for (size_t i = 0; i < 4; ++i) CHECK_MESSAGE(std::fabs(f[i] - q[i]) < 0.006, "temp " << temp << " id " << i);
    }
    Sampler a, b, d;
    SamplerParams p;
    p.seed = 9;
    std::vector<Sampler::Candidate> ca(4), cb(4), cd(4);
    REQUIRE(a.init(p, ca.data(), 4) == Status::kOk);
    REQUIRE(b.init(p, cb.data(), 4) == Status::kOk);
    p.seed = 10;
    REQUIRE(d.init(p, cd.data(), 4) == Status::kOk);
    int same_ab = 0, same_ad = 0;
    for (int i = 0; i < 1000; ++i) {
      const int32_t x = a.sample(l.data(), 4, 4), y = b.sample(l.data(), 4, 4), z = d.sample(l.data(), 4, 4);
      same_ab += x == y;
      same_ad += x == z;
    }
    CHECK(same_ab == 1000);
    CHECK(same_ad < 1000);
  }

  TEST_CASE("top-k and top-p keep the right candidates, renormalised") {
    const std::vector<float> l = {0.f, 1.f, 2.f, 3.f, -50.f};
    std::vector<Sampler::Candidate> c(5);
    Sampler s;
    SamplerParams p;
    p.temperature = 1.f;
    p.top_p = 1.f;
    p.top_k = 2;
    p.seed = 5;
    REQUIRE(s.init(p, c.data(), c.size()) == Status::kOk);
    auto f = frequencies(s, l, 5, 100000);
    const double e = std::exp(1.0);
    CHECK(f[0] == 0);
    CHECK(f[1] == 0);
    CHECK(std::fabs(f[3] - e / (1 + e)) < 0.006);
    // softmax = [.032 .087 .237 .644]: top-p 0.7 keeps {3, 2}
    p.top_k = 0;
    p.top_p = 0.7f;
    REQUIRE(s.init(p, c.data(), c.size()) == Status::kOk);
    f = frequencies(s, l, 5, 100000);
    CHECK(f[0] + f[1] + f[4] == 0);
    CHECK(std::fabs(f[3] - e / (1 + e)) < 0.006);
    p.top_p = 0.01f;
    REQUIRE(s.init(p, c.data(), c.size()) == Status::kOk);
    f = frequencies(s, l, 5, 1000);
    CHECK(f[3] == doctest::Approx(1.0));
    CHECK(f[0] + f[1] + f[2] + f[4] == 0);
  }

  TEST_CASE("bad parameters and too little scratch are refused") {
    std::vector<Sampler::Candidate> c(2);
    Sampler s;
    SamplerParams p;
    p.top_p = 0.f;
    CHECK(s.init(p, c.data(), 2) == Status::kInvalidArgument);
    p.top_p = 1.f;
    p.temperature = -1.f;
    CHECK(s.init(p, c.data(), 2) == Status::kInvalidArgument);
    p.temperature = 1.f;
    REQUIRE(s.init(p, c.data(), 2) == Status::kOk);
    const float l[4] = {0, 1, 2, 3};
    CHECK(s.sample(l, 4, 4) == -1);
  }
}
