// The rill side of a ROS node, with no ROS in it: a text stream over one model and one session. A
// ROS 1 node (rill_node.cc) calls it; a ROS 2 rclcpp node can call it unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "rill/extension.hpp"

namespace rill_ros {

struct TextStreamOptions {
  std::string model_path;   // a .rill file with a tokenizer
  size_t threads = 1;       // worker threads for the matrix products
  uint32_t max_tokens = 64; // tokens generated per input message
  float temperature = 0.f;  // 0: greedy (the same text as `rill run --greedy`)
  int32_t top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 1;
};

// One conversation: every input is appended to the same stream, so the model sees all inputs and
// replies so far, until reset(). Not thread-safe: call from one thread (a ROS callback queue).
class TextStream {
 public:
  // Maps and verifies the model, creates the session, sampler and buffers (allocates). On failure
  // returns null and sets *error.
  static std::unique_ptr<TextStream> open(const TextStreamOptions& o, std::string* error);
  // The same with the model already open (o.model_path only names it in messages).
  static std::unique_ptr<TextStream> open(rill::LoadedModel&& model, const TextStreamOptions& o, std::string* error);
  ~TextStream();

  // Feeds `text` (tokenized with the model's tokenizer) and generates up to max_tokens tokens after
  // it, stopping early at the model's end-of-sequence token. The reply is the generated text.
  bool respond(const std::string& text, std::string* reply, std::string* error);
  // Back to the empty state.
  void reset();
  const rill::ModelInfo& info() const;

 private:
  struct Impl;
  explicit TextStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill_ros
