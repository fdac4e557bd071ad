// libFuzzer: state copy-in. A blob that is not exactly this model's (wrong size, foreign
// fingerprint, damaged payload) is refused and leaves the state unchanged; a valid blob patched by
// the input must be refused unless the patch changed nothing.
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
OwnedSession* g_session;
std::vector<unsigned char>* g_valid;

void setup() {
  static LoadedModel lm;
  static OwnedSession os;
  static std::vector<unsigned char> valid;
  char dir[] = "/tmp/rill-fuzz-XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  const std::string out = std::string(dir) + "/m.rill";
  convert::Options o;
  o.input_dir = std::string(RILL_SOURCE_DIR) + "/tests/golden/mamba1_awkward";
  o.output = out;
  o.quiet = true;
  convert::run(o);
  if (LoadedModel::open(out.c_str(), ModelOptions{}, &lm) != Status::kOk) std::abort();
  if (OwnedSession::create(lm.model(), SessionOptions{}, &os) != Status::kOk) std::abort();
  for (int32_t t : {1, 2, 3}) (void)os.session().step(t, nullptr, 0);
  valid.resize(os.session().state_size());
  if (os.session().state_copy_out(valid.data(), valid.size()) != Status::kOk) std::abort();
  g_model = &lm, g_session = &os, g_valid = &valid;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_model) setup();
  Session& s = g_session->session();
  std::vector<unsigned char> before(s.state_size()), after(s.state_size());
  (void)s.state_copy_out(before.data(), before.size());
  std::vector<unsigned char> blob;
  if (size > 0 && (data[0] & 1)) {  // patch a valid blob: pairs of (offset16, xor byte)
    blob = *g_valid;
    for (size_t i = 1; i + 2 < size; i += 3) {
      const size_t off = (static_cast<size_t>(data[i]) | (static_cast<size_t>(data[i + 1]) << 8)) % blob.size();
      blob[off] ^= data[i + 2];
    }
  } else {
    blob.assign(data, data + size);
  }
  const Status st = s.state_copy_in(blob.data(), blob.size());
  (void)s.state_copy_out(after.data(), after.size());
  if (st == Status::kOk) {
    if (blob != *g_valid) std::abort();  // only the exact valid blob may be accepted
    if (after != blob) std::abort();
  } else if (before != after) {
    std::abort();  // a refused blob changed the state
  }
  (void)s.step(5, nullptr, 0);
  return 0;
}
