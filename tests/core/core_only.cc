// Linked against the core alone (rill_core: no extension, so no file mapping, owned buffers or thread
// pool): reads a model file into memory it owns, places the model and one session in its own buffers,
// steps the tokens of a golden fixture and compares every step's logits with its logits.npy.
// usage: rill_core_only MODEL.rill FIXTURE_DIR   (exit 0 when every step is within 1e-4 max |logit|)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rill/rill.hpp"

namespace {
std::vector<unsigned char> read_all(const std::string& path) {
  std::vector<unsigned char> b;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) b.insert(b.end(), buf, buf + n);
    std::fclose(f);
  }
  return b;
}

void* aligned(size_t n) { return std::aligned_alloc(rill::kAlign, (n + rill::kAlign - 1) / rill::kAlign * rill::kAlign); }
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const std::vector<unsigned char> file = read_all(argv[1]);
  const std::string dir = argv[2];
  void* data = aligned(file.size());
  std::memcpy(data, file.data(), file.size());
  rill::Error e;
  size_t model_bytes = 0, arena_bytes = 0;
  if (rill::Model::footprint(data, file.size(), &model_bytes, &e) != rill::Status::kOk) return std::puts(e.message), 1;
  void* mem = aligned(model_bytes);
  rill::Model model;
  if (rill::Model::init(data, file.size(), {}, mem, model_bytes, &model, &e) != rill::Status::kOk)
    return std::puts(e.message), 1;
  if (rill::Session::footprint(model, {}, &arena_bytes) != rill::Status::kOk) return 1;
  void* arena = aligned(arena_bytes);
  rill::Session s;
  if (rill::Session::init(model, {}, arena, arena_bytes, &s, &e) != rill::Status::kOk) return std::puts(e.message), 1;

  // tokens.txt: comma-separated ids; logits.npy: float32 [T, V] after a header ending in '\n'.
  std::vector<int32_t> tokens;
  const std::vector<unsigned char> tt = read_all(dir + "/tokens.txt");
  for (const char* p = reinterpret_cast<const char*>(tt.data()); p < reinterpret_cast<const char*>(tt.data()) + tt.size();) {
    char* end;
    tokens.push_back(static_cast<int32_t>(std::strtol(p, &end, 10)));
    p = end + 1;
  }
  const std::vector<unsigned char> npy = read_all(dir + "/logits.npy");
  const size_t header = 10 + (npy[8] | (npy[9] << 8));
  const size_t V = model.info().vocab_size;
  if (tokens.empty() || npy.size() != header + tokens.size() * V * 4) return std::puts("fixture does not match"), 1;
  std::vector<float> want(tokens.size() * V), logits(V);
  std::memcpy(want.data(), npy.data() + header, want.size() * 4);
  float max_abs = 0, worst = 0;
  for (float v : want) max_abs = std::fmax(max_abs, std::fabs(v));
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (s.step(tokens[t], logits.data(), V) != rill::Status::kOk) return 1;
    for (size_t v = 0; v < V; ++v) worst = std::fmax(worst, std::fabs(logits[v] - want[t * V + v]));
  }
  std::printf("core only (%s): %zu steps, max logit diff %g of max |logit| %g\n", model.info().backend, tokens.size(),
              worst, max_abs);
  std::free(arena), std::free(mem), std::free(data);
  return worst <= 1e-4f * max_abs ? 0 : 1;
}
