// Vector (sensor) models: S4D goldens from tests/golden/make_golden_s4d.py (float64, the authors'
// Vandermonde kernel and FFT convolution over the whole sequence), and the vector step's contract:
// prefill equals stepping, bad input leaves the state unchanged, state blobs round-trip.
#include <doctest/doctest.h>

#include <cmath>
#include <tuple>
#include <cstring>
#include <limits>

#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

const char* kVectorCases[] = {"s4d_prenorm_mean",  "s4d_postnorm_none", "s4d_prenorm_none_wide", "s4d_postnorm_mean",
                              "mamba1_vector", "mamba2_vector"};

struct VectorFixture {
  TempDir tmp;
  LoadedModel lm;
  OwnedSession os;
  std::string dir;
  Npy in, out;
  size_t T = 0, din = 0, dout = 0;

  explicit VectorFixture(const std::string& name, const std::string& dtype = "f32", uint32_t chunk = 8,
                         const std::string& layout = "rows16") {
    dir = golden_dir(name);
    const std::string file = tmp.file("model.rill");
    const std::string err = convert_ckpt(dir, file, dtype, true, layout);
    REQUIRE_MESSAGE(err.empty(), err);
    Error e;
    REQUIRE_MESSAGE(LoadedModel::open(file.c_str(), ModelOptions{}, &lm, &e) == Status::kOk, e.message);
    SessionOptions so;
    so.prefill_chunk = chunk;
    REQUIRE_MESSAGE(OwnedSession::create(lm.model(), so, &os, &e) == Status::kOk, e.message);
    in = read_npy(dir + "/inputs.npy");
    out = read_npy(dir + "/outputs.npy");
    const ModelInfo info = lm.model().info();
    din = info.d_input;
    dout = info.d_output;
    REQUIRE(din > 0);
    REQUIRE(in.shape.size() == 2);
    REQUIRE(in.shape[1] == din);
    T = in.shape[0];
    REQUIRE(out.shape.size() == 2);
    REQUIRE(out.shape[0] == T);
    REQUIRE(out.shape[1] == dout);
  }
  const float* x(size_t t) const { return in.data.data() + t * din; }
  float max_abs_out() const {
    float m = 0;
    for (float v : out.data) m = std::max(m, std::fabs(v));
    return m;
  }
  float diff(size_t t, const float* got) const {
    float d = 0;
    for (size_t j = 0; j < dout; ++j) d = std::max(d, std::fabs(got[j] - out.data[t * dout + j]));
    return d;
  }
  std::vector<unsigned char> blob() {
    std::vector<unsigned char> b(os.session().state_size());
    REQUIRE(os.session().state_copy_out(b.data(), b.size()) == Status::kOk);
    return b;
  }
};

}  // namespace

TEST_SUITE("golden") {
  TEST_CASE("vector models f32 (S4D, Mamba and Mamba-2 with vector heads): every step's output, and S4D's final "
            "state, match the whole-sequence references") {
    for (const std::string name : kVectorCases) {
      CAPTURE(name);
      VectorFixture f(name);
      const bool s4d = name.compare(0, 3, "s4d") == 0;
      CHECK((f.lm.model().info().arch == Arch::kS4d) == s4d);
      const float tol = 1e-4f * f.max_abs_out();
      std::vector<float> y(f.dout);
      float worst = 0;
      for (size_t t = 0; t < f.T; ++t) {
        REQUIRE(f.os.session().step_vector(f.x(t), f.din, y.data(), y.size()) == Status::kOk);
        worst = std::max(worst, f.diff(t, y.data()));
        CHECK_MESSAGE(f.diff(t, y.data()) <= tol, "step " << t);
      }
      if (!s4d) {  // Mamba's states are checked by the token goldens: the layers are the same code
        MESSAGE(name << ": max output diff " << worst << " (max |y| " << f.max_abs_out() << ")");
        continue;
      }
      // Final SSM state of every layer: [M, 2, H] in the reference's closed form.
      const Npy st = read_npy(f.dir + "/state_ssm.npy");
      const uint32_t L = f.lm.model().info().n_layer;
      REQUIRE(st.shape.size() == 4);
      REQUIRE(st.shape[0] == L);
      const size_t per = st.data.size() / L;
      float sd = 0, scale = 0;
      for (uint32_t l = 0; l < L; ++l) {
        size_t n = 0;
        const std::string sname = "layers." + std::to_string(l) + ".ssm";
        const float* got = f.os.session().state_tensor(sname.c_str(), &n);
        REQUIRE(got != nullptr);
        REQUIRE(n == per);
        for (size_t i = 0; i < n; ++i) {
          sd = std::max(sd, std::fabs(got[i] - st.data[l * per + i]));
          scale = std::max(scale, std::fabs(st.data[l * per + i]));
        }
      }
      CHECK(sd <= 1e-4f * scale);
      MESSAGE(name << ": max output diff " << worst << " (max |y| " << f.max_abs_out() << "), state diff " << sd
                   << " (max |s| " << scale << ")");
    }
  }

  TEST_CASE("vector models: prefill_vectors leaves the stepped state bit-exactly, any chunk; every step's outputs") {
    for (const std::string name : kVectorCases) {
      for (uint32_t chunk : {1u, 5u, 8u, 64u}) {
        CAPTURE(name);
        CAPTURE(chunk);
        VectorFixture f(name, "f32", chunk);
        Session& s = f.os.session();
        std::vector<float> all(f.T * f.dout), last(f.dout), ref(f.dout);
        REQUIRE(s.prefill_vectors(f.in.data.data(), f.T, f.T * f.din, all.data(), all.size()) == Status::kOk);
        const auto a = f.blob();
        s.reset();
        REQUIRE(s.prefill_vectors(f.in.data.data(), f.T, f.T * f.din, last.data(), last.size()) == Status::kOk);
        CHECK(f.blob() == a);
        s.reset();
        for (size_t t = 0; t < f.T; ++t) {
          REQUIRE(s.step_vector(f.x(t), f.din, ref.data(), ref.size()) == Status::kOk);
          CHECK(std::memcmp(ref.data(), all.data() + t * f.dout, f.dout * 4) == 0);
        }
        CHECK(f.blob() == a);
        CHECK(std::memcmp(ref.data(), last.data(), f.dout * 4) == 0);
      }
    }
  }

  TEST_CASE("s4d f16/q8/q4 (both layouts) output projections stay close to the f32 reference") {
    // Bounds on max |y - golden| as a fraction of the golden's largest output: f16 and q8 2e-2 (measured
    // 7.0e-5 and 3.1e-3), q4 0.1 in both layouts (measured 4.0e-2).
    for (const auto& [dtype, layout, bound] : {std::tuple{"f16", "rows16", 2e-2f}, std::tuple{"q8", "rows16", 2e-2f},
                                               std::tuple{"q4", "rows16", 0.1f}, std::tuple{"q4", "rows", 0.1f}}) {
      VectorFixture f("s4d_prenorm_none_wide", dtype, 8, layout);
      std::vector<float> y(f.dout);
      float worst = 0;
      for (size_t t = 0; t < f.T; ++t) {
        REQUIRE(f.os.session().step_vector(f.x(t), f.din, y.data(), y.size()) == Status::kOk);
        worst = std::max(worst, f.diff(t, y.data()));
      }
      CAPTURE(std::string(dtype) + " " + layout);
      // The SSM tensors (A, C, D), norms, encoder and decoder stay f32; only out_proj [128, 64] is f16 / int8 / int4.
      CHECK(worst <= bound * f.max_abs_out());
      MESSAGE("s4d " << std::string(dtype) << " " << std::string(layout) << ": max output diff " << worst << " (max |y| " << f.max_abs_out() << ")");
    }
  }
}

TEST_SUITE("vector") {
  TEST_CASE("vector step: NaN/Inf give kNonFinite, wrong sizes kInvalidArgument, and the state is unchanged") {
    VectorFixture f("s4d_prenorm_mean");
    Session& s = f.os.session();
    std::vector<float> y(f.dout);
    for (size_t t = 0; t < 5; ++t) REQUIRE(s.step_vector(f.x(t), f.din, y.data(), y.size()) == Status::kOk);
    const auto before = f.blob();
    std::vector<float> bad(f.x(5), f.x(5) + f.din);
    for (float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
      bad[f.din - 1] = v;
      CHECK(s.step_vector(bad.data(), f.din, y.data(), y.size()) == Status::kNonFinite);
      CHECK(f.blob() == before);
    }
    // A NaN in the last row of a prefill: nothing of the earlier rows was applied either.
    std::vector<float> rows(f.x(5), f.x(5) + 4 * f.din);
    rows.back() = std::numeric_limits<float>::quiet_NaN();
    CHECK(s.prefill_vectors(rows.data(), 4, rows.size(), y.data(), y.size()) == Status::kNonFinite);
    CHECK(f.blob() == before);
    CHECK(s.step_vector(f.x(5), f.din - 1, y.data(), y.size()) == Status::kInvalidArgument);
    CHECK(s.step_vector(f.x(5), f.din + 1, y.data(), y.size()) == Status::kInvalidArgument);
    CHECK(s.step_vector(f.x(5), f.din, y.data(), y.size() - 1) == Status::kInvalidArgument);
    CHECK(s.step_vector(nullptr, f.din, y.data(), y.size()) == Status::kInvalidArgument);
    CHECK(s.prefill_vectors(f.x(5), 3, 2 * f.din, y.data(), y.size()) == Status::kInvalidArgument);
    CHECK(s.prefill_vectors(f.x(5), 0, 0, y.data(), y.size()) == Status::kInvalidArgument);
    CHECK(s.prefill_vectors(f.x(5), 3, 3 * f.din, y.data(), 2 * f.dout) == Status::kInvalidArgument);
    CHECK(s.step(0, y.data(), y.size()) == Status::kInvalidArgument);  // a vector model takes no tokens
    const int32_t tok = 0;
    CHECK(s.prefill(&tok, 1, nullptr, 0) == Status::kInvalidArgument);
    CHECK(f.blob() == before);
    // And the stream goes on as if nothing had happened: the golden output at step 5.
    REQUIRE(s.step_vector(f.x(5), f.din, y.data(), y.size()) == Status::kOk);
    CHECK(f.diff(5, y.data()) <= 1e-4f * f.max_abs_out());
    // A null output skips the decoder but advances the state.
    REQUIRE(s.step_vector(f.x(6), f.din, nullptr, 0) == Status::kOk);
    REQUIRE(s.step_vector(f.x(7), f.din, y.data(), y.size()) == Status::kOk);
    CHECK(f.diff(7, y.data()) <= 1e-4f * f.max_abs_out());
  }

  TEST_CASE("token model: step_vector gives kInvalidArgument") {
    TempDir tmp;
    const std::string file = tmp.file("m.rill");
    REQUIRE(convert_ckpt(golden_dir("mamba1_awkward"), file).empty());
    LoadedModel lm;
    REQUIRE(LoadedModel::open(file.c_str(), ModelOptions{}, &lm) == Status::kOk);
    CHECK(lm.model().info().d_input == 0);
    CHECK(lm.model().info().d_output == lm.model().info().vocab_size);
    OwnedSession os;
    REQUIRE(OwnedSession::create(lm.model(), SessionOptions{}, &os) == Status::kOk);
    float x[4] = {0, 0, 0, 0};
    CHECK(os.session().step_vector(x, 4, nullptr, 0) == Status::kInvalidArgument);
  }

  TEST_CASE("vector state blob: save mid-stream, restore, continue bit-exactly; another model's blob is refused") {
    VectorFixture f("s4d_postnorm_mean");  // pooled: the running mean and its count are state too
    Session& s = f.os.session();
    std::vector<float> y(f.dout), a(f.T * f.dout), b(f.T * f.dout);
    const size_t half = f.T / 2;
    for (size_t t = 0; t < half; ++t) REQUIRE(s.step_vector(f.x(t), f.din, y.data(), y.size()) == Status::kOk);
    const auto saved = f.blob();
    for (size_t t = half; t < f.T; ++t) REQUIRE(s.step_vector(f.x(t), f.din, a.data() + t * f.dout, f.dout) == Status::kOk);
    s.reset();
    REQUIRE(s.state_copy_in(saved.data(), saved.size()) == Status::kOk);
    for (size_t t = half; t < f.T; ++t) REQUIRE(s.step_vector(f.x(t), f.din, b.data() + t * f.dout, f.dout) == Status::kOk);
    CHECK(a == b);
    CHECK(f.diff(f.T - 1, b.data() + (f.T - 1) * f.dout) <= 1e-4f * f.max_abs_out());
    VectorFixture g("s4d_prenorm_mean");
    const auto other = g.blob();
    CHECK(s.state_copy_in(other.data(), other.size()) == Status::kStateMismatch);
  }
}
