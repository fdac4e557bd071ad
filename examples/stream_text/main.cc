// Streaming text generation with the rill C++ API: map the file, place the model and one session in
// memory we own, then step token by token with no allocation inside the loop.
//
//   stream_text MODEL.rill "ROMEO:" 200
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "rill/extension.hpp"  // MappedFile, AlignedBuffer: the allocating helpers
#include "rill/rill.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.rill PROMPT [N]\n", argv[0]);
    return 2;
  }
  const int n = argc > 3 ? std::atoi(argv[3]) : 200;
  rill::Error err;
  rill::MappedFile file;
  if (rill::MappedFile::open(argv[1], &file, &err) != rill::Status::kOk) {
    std::fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  // 1. Model: verify the file and bind zero-copy views in memory we provide.
  size_t model_bytes = 0;
  if (rill::Model::footprint(file.data(), file.size(), &model_bytes, &err) != rill::Status::kOk) {
    std::fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  rill::AlignedBuffer model_mem, arena;
  rill::Model model;
  if (rill::AlignedBuffer::allocate(model_bytes, &model_mem) != rill::Status::kOk ||
      rill::Model::init(file.data(), file.size(), rill::ModelOptions{}, model_mem.data(), model_mem.size(), &model,
                        &err) != rill::Status::kOk) {
    std::fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  if (model.info().tokenizer != rill::TokenizerKind::kBytes) {
    std::fprintf(stderr, "this example needs a byte-tokenizer model\n");
    return 1;
  }
  // 2. Session: state + scratch in one arena.
  size_t arena_bytes = 0;
  rill::Session session;
  if (rill::Session::footprint(model, rill::SessionOptions{}, &arena_bytes) != rill::Status::kOk ||
      rill::AlignedBuffer::allocate(arena_bytes, &arena) != rill::Status::kOk ||
      rill::Session::init(model, rill::SessionOptions{}, arena.data(), arena.size(), &session, &err) !=
          rill::Status::kOk) {
    std::fprintf(stderr, "session: %s\n", err.message);
    return 1;
  }
  const size_t V = model.info().vocab_size;
  std::vector<float> logits(V);
  std::vector<rill::Sampler::Candidate> scratch(rill::Sampler::scratch_count(V));
  rill::Sampler sampler;
  rill::SamplerParams sp;
  sp.seed = 42;
  if (sampler.init(sp, scratch.data(), scratch.size()) != rill::Status::kOk) return 1;

  // 3. Prompt, then generate. Nothing below allocates.
  std::vector<int32_t> prompt(argv[2], argv[2] + std::strlen(argv[2]));
  for (int32_t& t : prompt) t &= 0xFF;
  std::fputs(argv[2], stdout);
  if (session.prefill(prompt.data(), prompt.size(), logits.data(), V) != rill::Status::kOk) return 1;
  for (int i = 0; i < n; ++i) {
    const int32_t tok = sampler.sample(logits.data(), V, 256);
    std::fputc(tok, stdout);
    std::fflush(stdout);
    if (session.step(tok, logits.data(), V) != rill::Status::kOk) return 1;
  }
  std::fputc('\n', stdout);
  return 0;
}
