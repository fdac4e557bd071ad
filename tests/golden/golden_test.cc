// Golden checks: fixtures converted by rill-convert, stepped token by token by the runtime, against
// logits and final states from tests/golden/make_golden.py (float64, whole-sequence parallel scan).
#include <doctest/doctest.h>

#include <cmath>

#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

const char* kCases[] = {"mamba1_awkward", "mamba1_ssm_bf16_sharded", "mamba1_hf_f16_tied", "../fuzz/byte_model",
                         "mamba2_groups", "mamba2_tied_bf16"};

struct Fixture {
  TempDir tmp;
  LoadedModel lm;
  OwnedSession os;
  std::vector<int32_t> tokens;
  Npy logits, conv, ssm;
  size_t V = 0;

  explicit Fixture(const std::string& name, const std::string& dtype = "f32") {
    const std::string dir = golden_dir(name);
    const std::string out = tmp.file("model.rill");
    const std::string err = convert_ckpt(dir, out, dtype);
    REQUIRE_MESSAGE(err.empty(), err);
    Error e;
    REQUIRE_MESSAGE(LoadedModel::open(out.c_str(), ModelOptions{}, &lm, &e) == Status::kOk, e.message);
    REQUIRE_MESSAGE(OwnedSession::create(lm.model(), SessionOptions{}, &os, &e) == Status::kOk, e.message);
    tokens = read_tokens(dir + "/tokens.txt");
    logits = read_npy(dir + "/logits.npy");
    conv = read_npy(dir + "/state_conv.npy");
    ssm = read_npy(dir + "/state_ssm.npy");
    V = lm.model().info().vocab_size;
    REQUIRE(!tokens.empty());
    REQUIRE(logits.shape.size() == 2);
    REQUIRE(logits.shape[0] == tokens.size());
    REQUIRE(logits.shape[1] == V);
  }

  float max_abs_logit() const {
    float m = 0;
    for (float v : logits.data) m = std::max(m, std::fabs(v));
    return m;
  }

  // Max |a - golden| over one step's logits.
  float step_diff(size_t t, const float* got) const {
    float d = 0;
    for (size_t v = 0; v < V; ++v) d = std::max(d, std::fabs(got[v] - logits.data[t * V + v]));
    return d;
  }

  // Max |state - golden| over every layer's conv history and ssm state; also the scale.
  void state_diff(Session& s, float* diff, float* scale) const {
    *diff = 0, *scale = 0;
    const uint32_t L = lm.model().info().n_layer;
    const Npy* ref[2] = {&conv, &ssm};
    const char* kind[2] = {"conv", "ssm"};
    for (int k = 0; k < 2; ++k) {
      const size_t per = ref[k]->data.size() / L;
      for (uint32_t l = 0; l < L; ++l) {
        size_t n = 0;
        const std::string name = "layers." + std::to_string(l) + "." + kind[k];
        const float* got = s.state_tensor(name.c_str(), &n);
        REQUIRE_MESSAGE(got != nullptr, name);
        REQUIRE(n == per);
        // conv: rill [K-1, C] = reference [K-1, C]. ssm: Mamba-1 rill [N, E] vs reference [E, N];
        // Mamba-2 rill [H, P, N] = reference [H, P, N].
        const bool transpose = k == 1 && lm.model().info().arch == Arch::kMamba1;
        const size_t E = ref[k]->shape[1];
        const size_t inner = per / E;
        for (size_t i = 0; i < n; ++i) {
          const size_t r = transpose ? (i % E) * inner + i / E : i;
          *diff = std::max(*diff, std::fabs(got[i] - ref[k]->data[l * per + r]));
          *scale = std::max(*scale, std::fabs(ref[k]->data[l * per + r]));
        }
      }
    }
  }
};

}  // namespace

TEST_SUITE("golden") {
  TEST_CASE("mamba1/mamba2 f32: every step's logits and the final state match the parallel-scan reference") {
    for (const char* cname : kCases) {
      const std::string name = cname;
      CAPTURE(name);
      Fixture f(name);
      const float tol = 1e-4f * f.max_abs_logit();
      std::vector<float> out(f.V);
      float worst = 0;
      for (size_t t = 0; t < f.tokens.size(); ++t) {
        REQUIRE(f.os.session().step(f.tokens[t], out.data(), out.size()) == Status::kOk);
        const float d = f.step_diff(t, out.data());
        worst = std::max(worst, d);
        CHECK_MESSAGE(d <= tol, "step " << t << ": max diff " << d << " > " << tol);
      }
      float sd, scale;
      f.state_diff(f.os.session(), &sd, &scale);
      CHECK(sd <= 1e-4f * scale);
      MESSAGE(name << ": max logit diff " << worst << " (max |logit| " << f.max_abs_logit() << "), state diff " << sd);
    }
  }

  TEST_CASE("mamba1/mamba2: prefill then step leaves the same state and logits as stepping") {
    for (const char* cname : kCases) {
      const std::string name = cname;
      CAPTURE(name);
      Fixture f(name);
      const size_t T = f.tokens.size(), split = T / 2;
      std::vector<float> out(f.V), ref(f.V);
      Session& s = f.os.session();
      REQUIRE(s.prefill(f.tokens.data(), split, out.data(), out.size()) == Status::kOk);
      CHECK(f.step_diff(split - 1, out.data()) <= 1e-4f * f.max_abs_logit());
      for (size_t t = split; t < T; ++t) REQUIRE(s.step(f.tokens[t], out.data(), out.size()) == Status::kOk);
      CHECK(f.step_diff(T - 1, out.data()) <= 1e-4f * f.max_abs_logit());
      std::vector<unsigned char> a(s.state_size()), b(s.state_size());
      REQUIRE(s.state_copy_out(a.data(), a.size()) == Status::kOk);
      // The same tokens stepped one by one give bit-identical state.
      s.reset();
      for (size_t t = 0; t < T; ++t) REQUIRE(s.step(f.tokens[t], ref.data(), ref.size()) == Status::kOk);
      REQUIRE(s.state_copy_out(b.data(), b.size()) == Status::kOk);
      CHECK(a == b);
      CHECK(std::memcmp(out.data(), ref.data(), out.size() * 4) == 0);
    }
  }

  TEST_CASE("mamba1/mamba2 f16 weights stay close to the f32 reference") {
    for (const char* cname : kCases) {
      const std::string name = cname;
      CAPTURE(name);
      Fixture f(name, "f16");
      std::vector<float> out(f.V);
      float worst = 0;
      size_t agree = 0;
      for (size_t t = 0; t < f.tokens.size(); ++t) {
        REQUIRE(f.os.session().step(f.tokens[t], out.data(), out.size()) == Status::kOk);
        worst = std::max(worst, f.step_diff(t, out.data()));
        size_t a = 0, b = 0;
        for (size_t v = 1; v < f.V; ++v) {
          if (out[v] > out[a]) a = v;
          if (f.logits.data[t * f.V + v] > f.logits.data[t * f.V + b]) b = v;
        }
        agree += a == b;
      }
      MESSAGE(name << " f16: max logit diff " << worst << " of max |logit| " << f.max_abs_logit() << ", top-1 agree "
                   << agree << "/" << f.tokens.size());
      CHECK(worst <= 1e-2f * f.max_abs_logit());
    }
  }

  TEST_CASE("session state: save/restore reproduces outputs bit-exactly; reset equals a fresh session") {
    Fixture f("mamba1_awkward");
    Session& s = f.os.session();
    const size_t T = f.tokens.size();
    std::vector<float> a(f.V), b(f.V);
    for (size_t t = 0; t < T / 2; ++t) REQUIRE(s.step(f.tokens[t], a.data(), a.size()) == Status::kOk);
    std::vector<unsigned char> snap(s.state_size());
    REQUIRE(s.state_copy_out(snap.data(), snap.size()) == Status::kOk);
    for (size_t t = T / 2; t < T; ++t) REQUIRE(s.step(f.tokens[t], a.data(), a.size()) == Status::kOk);
    REQUIRE(s.state_copy_in(snap.data(), snap.size()) == Status::kOk);
    for (size_t t = T / 2; t < T; ++t) REQUIRE(s.step(f.tokens[t], b.data(), b.size()) == Status::kOk);
    CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);

    // Two sessions on one model do not interact; reset equals fresh.
    OwnedSession other;
    REQUIRE(OwnedSession::create(f.lm.model(), SessionOptions{}, &other) == Status::kOk);
    s.reset();
    for (size_t t = 0; t < T; ++t) {
      REQUIRE(s.step(f.tokens[t], a.data(), a.size()) == Status::kOk);
      REQUIRE(other.session().step(f.tokens[t], b.data(), b.size()) == Status::kOk);
      REQUIRE(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    }
    CHECK(f.step_diff(T - 1, a.data()) <= 1e-4f * f.max_abs_logit());
  }
}
