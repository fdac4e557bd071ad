// libFuzzer: tokenizer on arbitrary bytes. Tokenize with a too-small then an exact buffer; every
// token detokenizes; the bytes round-trip exactly.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rill/convert.hpp"
#include "rill/extension.hpp"

using namespace rill;

namespace {
LoadedModel* g_model;
void setup() {
  static LoadedModel lm;
  char dir[] = "/tmp/rill-fuzz-XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  convert::Options o;
  o.input_dir = std::string(RILL_SOURCE_DIR) + "/tests/fuzz/byte_model";
  o.output = std::string(dir) + "/m.rill";
  o.quiet = true;
  convert::run(o);
  if (LoadedModel::open(o.output.c_str(), ModelOptions{}, &lm) != Status::kOk) std::abort();
  if (lm.model().info().tokenizer != TokenizerKind::kBytes) std::abort();
  g_model = &lm;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_model) setup();
  const Model& m = g_model->model();
  const char* text = reinterpret_cast<const char*>(data);
  size_t n = 0;
  std::vector<int32_t> small(size / 2);
  const Status s1 = tokenize(m, text, size, small.data(), small.size(), &n);
  if (size > small.size() && s1 != Status::kInvalidArgument) std::abort();
  std::vector<int32_t> toks(n);
  if (tokenize(m, text, size, toks.data(), toks.size(), &n) != Status::kOk || n != toks.size()) std::abort();
  std::string back;
  for (int32_t t : toks) {
    char buf[16];
    size_t k = 0;
    if (detokenize(m, t, buf, sizeof buf, &k) != Status::kOk) std::abort();
    back.append(buf, k);
  }
  if (back.size() != size || std::memcmp(back.data(), data, size) != 0) std::abort();
  size_t k;
  char c;
  if (detokenize(m, -1, &c, 1, &k) != Status::kTokenRange) std::abort();
  return 0;
}
