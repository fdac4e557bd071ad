// The rill side of a ROS sensor node, with no ROS in it: one stream of float vectors through a vector
// model, with the gap detection a sensor topic needs. A ROS 1 node (rill_node.cc) calls it; a ROS 2
// rclcpp node can call it unchanged (tests/ros/sensor_stream_test.cc runs it without ROS).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "rill/extension.hpp"

namespace rill_ros {

// What to do when samples are missing (a sequence number skipped, or a stamp more than 1.5 periods
// after the last): the recurrent state has not seen them.
enum class GapPolicy {
  kIgnore,  // step on: count the gap only
  kHold,    // step the last input once per missing sample (zero-order hold), up to max_hold; longer: reset
  kReset,   // start from the empty state
};
bool parse_gap_policy(const std::string& s, GapPolicy* out);  // "ignore", "hold", "reset"

struct SensorStreamOptions {
  size_t threads = 1;        // worker threads for the matrix products
  bool lock_memory = false;  // lock the model and the arena in RAM (they are always prefaulted)
  double period_s = 0;       // the sensor's period; 0: gaps are found from sequence numbers only
  GapPolicy gap_policy = GapPolicy::kHold;
  uint32_t max_hold = 100;   // kHold: the longest gap filled; a longer one resets
};

struct SensorCounters {
  uint64_t steps = 0;     // samples stepped (held ones not included)
  uint64_t refused = 0;   // samples refused: wrong size, NaN or Inf (the state unchanged)
  uint64_t gaps = 0;      // gaps seen
  uint64_t missing = 0;   // samples missing in them (a subscriber queue overflow shows here)
  uint64_t held = 0;      // steps of held input (kHold)
  uint64_t resets = 0;    // resets: for gaps (kReset, or a gap over max_hold) and by request
};

class SensorStream {
 public:
  // Opens and verifies the model at `path` (prefaulted; locked with lock_memory), creates the session
  // (allocates). On failure returns null and sets *error. The second form takes a model already open.
  static std::unique_ptr<SensorStream> open(const std::string& path, const SensorStreamOptions& o, std::string* error);
  static std::unique_ptr<SensorStream> open(rill::LoadedModel&& model, const SensorStreamOptions& o,
                                            std::string* error);
  ~SensorStream();

  // One sample of n floats (d_input) with its sequence number (0: none) and stamp in seconds (< 0:
  // none); writes d_output floats. A gap since the last sample is handled by the policy first;
  // *missing (if not null) gets the samples found missing. A refused sample (kInvalidArgument,
  // kNonFinite) leaves the state unchanged and writes nothing. No allocation.
  rill::Status step(const float* in, size_t n, uint64_t seq, double stamp_s, float* out, size_t n_out,
                    uint64_t* missing = nullptr);
  void reset();  // the empty state; the next sample starts a new sequence
  const rill::ModelInfo& info() const;
  const SensorCounters& counters() const;

 private:
  struct Impl;
  explicit SensorStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill_ros
