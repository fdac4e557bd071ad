#include "rill_sensor_stream.h"

#include <cmath>
#include <vector>

namespace rill_ros {

bool parse_gap_policy(const std::string& s, GapPolicy* out) {
  if (s == "ignore") *out = GapPolicy::kIgnore;
  else if (s == "hold") *out = GapPolicy::kHold;
  else if (s == "reset") *out = GapPolicy::kReset;
  else return false;
  return true;
}

struct SensorStream::Impl {
  SensorStreamOptions opts;
  rill::LoadedModel model;
  rill::ThreadPool* pool = nullptr;
  rill::OwnedSession session;
  rill::ModelInfo info;
  SensorCounters counters;
  std::vector<float> last_input, scratch_out;
  bool have_last = false;  // a sample since the start or the last reset
  uint64_t last_seq = 0;
  double last_stamp = -1;
  ~Impl() { rill::ThreadPool::destroy(pool); }
};

SensorStream::SensorStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SensorStream::~SensorStream() = default;

std::unique_ptr<SensorStream> SensorStream::open(const std::string& path, const SensorStreamOptions& o,
                                                 std::string* error) {
  rill::LoadedModel lm;
  rill::ModelOptions mo;
  mo.prefault = true;
  mo.lock_memory = o.lock_memory;
  rill::Error e;
  if (rill::LoadedModel::open(path.c_str(), mo, &lm, &e) != rill::Status::kOk) {
    *error = path + ": " + e.message;
    return nullptr;
  }
  return open(std::move(lm), o, error);
}

std::unique_ptr<SensorStream> SensorStream::open(rill::LoadedModel&& model, const SensorStreamOptions& o,
                                                 std::string* error) {
  auto im = std::make_unique<Impl>();
  im->opts = o;
  im->model = std::move(model);
  im->info = im->model.model().info();
  if (im->info.d_input == 0) {
    *error = "the model takes tokens, not float vectors: not a sensor model";
    return nullptr;
  }
  if (!(o.period_s >= 0) || !std::isfinite(o.period_s)) {
    *error = "the period must be >= 0 seconds";
    return nullptr;
  }
  if (o.threads > 1 && rill::ThreadPool::create(o.threads, &im->pool) != rill::Status::kOk) {
    *error = "cannot create " + std::to_string(o.threads) + " threads";
    return nullptr;
  }
  rill::SessionOptions so;
  so.pool = im->pool;
  so.prefill_chunk = 1;
  so.prefault = true;
  so.lock_memory = o.lock_memory;
  rill::Error e;
  if (rill::OwnedSession::create(im->model.model(), so, &im->session, &e) != rill::Status::kOk) {
    *error = std::string("session: ") + e.message;
    return nullptr;
  }
  im->last_input.resize(im->info.d_input);
  im->scratch_out.resize(im->info.d_output);
  return std::unique_ptr<SensorStream>(new SensorStream(std::move(im)));
}

rill::Status SensorStream::step(const float* in, size_t n, uint64_t seq, double stamp_s, float* out, size_t n_out,
                                uint64_t* missing_out) {
  Impl& im = *impl_;
  if (missing_out) *missing_out = 0;
  // Samples missing since the last one: from the sequence numbers and from the stamps.
  uint64_t missing = 0;
  if (im.have_last) {
    if (seq && im.last_seq && seq > im.last_seq) missing = seq - im.last_seq - 1;
    const double p = im.opts.period_s;
    if (p > 0 && stamp_s >= 0 && im.last_stamp >= 0 && stamp_s - im.last_stamp > 1.5 * p) {
      const double by_stamp = std::floor((stamp_s - im.last_stamp) / p + 0.5) - 1;
      if (by_stamp > static_cast<double>(missing)) missing = static_cast<uint64_t>(by_stamp);
    }
  }
  // The sample is checked before the gap is acted on: a refused sample changes no state. Its gap is
  // counted (it arrived, so it is not missing itself), but not acted on.
  rill::Status bad = rill::Status::kOk;
  if (n != im.info.d_input || n_out != im.info.d_output || !in || !out) bad = rill::Status::kInvalidArgument;
  for (size_t i = 0; bad == rill::Status::kOk && i < n; ++i)
    if (!std::isfinite(in[i])) bad = rill::Status::kNonFinite;
  if (missing) {
    ++im.counters.gaps;
    im.counters.missing += missing;
    if (missing_out) *missing_out = missing;
  }
  if (bad != rill::Status::kOk) {
    ++im.counters.refused;
    if (seq) im.last_seq = seq;
    if (stamp_s >= 0) im.last_stamp = stamp_s;
    return bad;
  }
  rill::Session& s = im.session.session();
  if (missing) {
    const GapPolicy p = im.opts.gap_policy;
    if (p == GapPolicy::kReset || (p == GapPolicy::kHold && missing > im.opts.max_hold)) {
      if (s.reset() == rill::Status::kOk) ++im.counters.resets;
    } else if (p == GapPolicy::kHold) {
      for (uint64_t k = 0; k < missing; ++k) {
        const rill::Status st = s.step_vector(im.last_input.data(), n, im.scratch_out.data(), im.scratch_out.size());
        if (st != rill::Status::kOk) return st;
        ++im.counters.held;
      }
    }
  }
  const rill::Status st = s.step_vector(in, n, out, n_out);
  if (st != rill::Status::kOk) {
    ++im.counters.refused;
    return st;
  }
  ++im.counters.steps;
  std::copy(in, in + n, im.last_input.begin());
  im.have_last = true;
  if (seq) im.last_seq = seq;
  if (stamp_s >= 0) im.last_stamp = stamp_s;
  return rill::Status::kOk;
}

void SensorStream::reset() {
  Impl& im = *impl_;
  if (im.session.session().reset() == rill::Status::kOk) ++im.counters.resets;
  im.have_last = false;
  im.last_seq = 0;
  im.last_stamp = -1;
}

const rill::ModelInfo& SensorStream::info() const { return impl_->info; }
const SensorCounters& SensorStream::counters() const { return impl_->counters; }

}  // namespace rill_ros
