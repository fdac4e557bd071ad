// The ROS-free sensor stream (examples/ros_node/rill_sensor_stream.h) without ROS: what a ROS 1 or
// ROS 2 node calls. Each case against a plain Session stepped by hand with what the policy means.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "rill_sensor_stream.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;
using rill_ros::GapPolicy;
using rill_ros::SensorStream;
using rill_ros::SensorStreamOptions;

namespace {

std::vector<float> sample(size_t t, size_t din) {
  std::vector<float> x(din);
  for (size_t k = 0; k < din; ++k) x[k] = static_cast<float>(std::sin(0.3 * (t + 1) + 0.7 * k));
  return x;
}

struct Fixture {
  TempDir tmp;
  std::string path;
  size_t din = 0, dout = 0;
  Fixture() {
    path = tmp.file("s4d.rill");
    const std::string e = convert_ckpt(golden_dir("s4d_prenorm_mean"), path, "f32");
    REQUIRE_MESSAGE(e.empty(), e);
    LoadedModel lm;
    REQUIRE(LoadedModel::open(path.c_str(), ModelOptions{}, &lm) == Status::kOk);
    din = lm.model().info().d_input;
    dout = lm.model().info().d_output;
  }
  std::unique_ptr<SensorStream> open(GapPolicy p, double period = 0, uint32_t max_hold = 100) {
    SensorStreamOptions o;
    o.gap_policy = p;
    o.period_s = period;
    o.max_hold = max_hold;
    std::string err;
    auto s = SensorStream::open(path, o, &err);
    REQUIRE_MESSAGE(s != nullptr, err);
    return s;
  }
};

// The reference: a plain session stepping `inputs` (each a sample index; -1 resets).
std::vector<float> reference(const Fixture& f, const std::vector<long>& inputs) {
  LoadedModel lm;
  REQUIRE(LoadedModel::open(f.path.c_str(), ModelOptions{}, &lm) == Status::kOk);
  OwnedSession os;
  REQUIRE(OwnedSession::create(lm.model(), SessionOptions{}, &os) == Status::kOk);
  std::vector<float> y(f.dout);
  for (long t : inputs) {
    if (t < 0) {
      REQUIRE(os.session().reset() == Status::kOk);
      continue;
    }
    const std::vector<float> x = sample(static_cast<size_t>(t), f.din);
    REQUIRE(os.session().step_vector(x.data(), x.size(), y.data(), y.size()) == Status::kOk);
  }
  return y;
}

}  // namespace

TEST_SUITE("ros_free") {
  TEST_CASE("sensor stream: consecutive samples equal a plain session; gaps by sequence number per policy") {
    Fixture f;
    std::vector<float> y(f.dout);
    uint64_t missing = 0;
    // Samples 0..4 with seq 1..5, then seq 9 (7, 8 and... 3 missing: 6, 7, 8) carrying sample 5.
    for (GapPolicy p : {GapPolicy::kIgnore, GapPolicy::kHold, GapPolicy::kReset}) {
      CAPTURE(static_cast<int>(p));
      auto s = f.open(p);
      for (size_t t = 0; t < 5; ++t) {
        const auto x = sample(t, f.din);
        REQUIRE(s->step(x.data(), x.size(), t + 1, -1, y.data(), y.size(), &missing) == Status::kOk);
        CHECK(missing == 0);
      }
      CHECK(std::memcmp(y.data(), reference(f, {0, 1, 2, 3, 4}).data(), f.dout * sizeof(float)) == 0);
      const auto x5 = sample(5, f.din);
      REQUIRE(s->step(x5.data(), x5.size(), 9, -1, y.data(), y.size(), &missing) == Status::kOk);
      CHECK(missing == 3);
      CHECK(s->counters().gaps == 1);
      CHECK(s->counters().missing == 3);
      std::vector<long> want = {0, 1, 2, 3, 4, 5};
      if (p == GapPolicy::kHold) want = {0, 1, 2, 3, 4, 4, 4, 4, 5};  // the last input, once per missing sample
      if (p == GapPolicy::kReset) want = {5};
      CHECK(std::memcmp(y.data(), reference(f, want).data(), f.dout * sizeof(float)) == 0);
      CHECK(s->counters().held == (p == GapPolicy::kHold ? 3u : 0u));
      CHECK(s->counters().resets == (p == GapPolicy::kReset ? 1u : 0u));
      CHECK(s->counters().steps == 6);
    }
  }

  TEST_CASE("sensor stream: gaps by stamp; a gap longer than max_hold resets; refused samples change nothing") {
    Fixture f;
    std::vector<float> y(f.dout);
    uint64_t missing = 0;
    auto s = f.open(GapPolicy::kHold, 0.01, 2);
    const auto x0 = sample(0, f.din), x1 = sample(1, f.din), x2 = sample(2, f.din), x3 = sample(3, f.din);
    REQUIRE(s->step(x0.data(), x0.size(), 0, 100.00, y.data(), y.size(), &missing) == Status::kOk);
    REQUIRE(s->step(x1.data(), x1.size(), 0, 100.014, y.data(), y.size(), &missing) == Status::kOk);  // 1.4 periods
    CHECK(missing == 0);
    REQUIRE(s->step(x2.data(), x2.size(), 0, 100.044, y.data(), y.size(), &missing) == Status::kOk);  // 3 periods
    CHECK(missing == 2);
    CHECK(std::memcmp(y.data(), reference(f, {0, 1, 1, 1, 2}).data(), f.dout * sizeof(float)) == 0);
    REQUIRE(s->step(x3.data(), x3.size(), 0, 100.104, y.data(), y.size(), &missing) == Status::kOk);  // 6 periods
    CHECK(missing == 5);  // more than max_hold 2: reset
    CHECK(s->counters().resets == 1);
    CHECK(std::memcmp(y.data(), reference(f, {3}).data(), f.dout * sizeof(float)) == 0);

    // Refused: wrong size, NaN. The state and the outputs stay as they were; the next sample is not a gap.
    auto r = f.open(GapPolicy::kHold);
    REQUIRE(r->step(x0.data(), x0.size(), 1, -1, y.data(), y.size()) == Status::kOk);
    std::vector<float> bad = x1;
    bad[0] = std::nanf("");
    const std::vector<float> before = y;
    CHECK(r->step(bad.data(), bad.size(), 2, -1, y.data(), y.size()) == Status::kNonFinite);
    CHECK(r->step(x1.data(), x1.size() - 1, 3, -1, y.data(), y.size()) == Status::kInvalidArgument);
    CHECK(y == before);
    CHECK(r->counters().refused == 2);
    REQUIRE(r->step(x1.data(), x1.size(), 4, -1, y.data(), y.size(), &missing) == Status::kOk);
    CHECK(missing == 0);
    CHECK(std::memcmp(y.data(), reference(f, {0, 1}).data(), f.dout * sizeof(float)) == 0);
    // A reset starts a new sequence: a lower seq after it is no gap.
    r->reset();
    REQUIRE(r->step(x2.data(), x2.size(), 1, -1, y.data(), y.size(), &missing) == Status::kOk);
    CHECK(missing == 0);
    CHECK(std::memcmp(y.data(), reference(f, {2}).data(), f.dout * sizeof(float)) == 0);
  }

  TEST_CASE("sensor stream: a token model is refused by name") {
    TempDir tmp;
    const std::string path = tmp.file("m.rill");
    REQUIRE(convert_ckpt(golden_dir("mamba1_awkward"), path).empty());
    std::string err;
    CHECK(SensorStream::open(path, SensorStreamOptions{}, &err) == nullptr);
    CHECK(err.find("not a sensor model") != std::string::npos);
    CHECK(SensorStream::open(tmp.file("missing.rill"), SensorStreamOptions{}, &err) == nullptr);
    CHECK(err.find("missing.rill") != std::string::npos);
  }
}
