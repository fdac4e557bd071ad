// libFuzzer: any bytes as a model file -> a status, never a crash, hang, out-of-bounds read or huge
// allocation. Model memory is allocated at whatever size Model::footprint asks, as LoadedModel::open
// does, so a footprint that grows beyond what the file holds trips libFuzzer's -malloc_limit_mb
// (scripts/fuzz.sh). A file that verifies must also run (its arena, the model's declared state, is
// capped here: a valid model may declare a large one): after Model::init only caller input can fail a
// step, so valid prefills and steps must return kOk, an out-of-range token kTokenRange, a NaN input
// kNonFinite, and a state blob just copied out must be taken back. Anything else aborts (a finding).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "rill/rill.hpp"

using namespace rill;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  void* file = std::aligned_alloc(64, (size + 63) / 64 * 64 + 64);
  std::memcpy(file, data, size);
  Error e;
  size_t need = 0;
  if (Model::footprint(file, size, &need, &e) == Status::kOk) {
    void* mem = std::aligned_alloc(64, (need + 63) / 64 * 64);
    Model m;
    if (Model::init(file, size, ModelOptions{}, mem, need, &m, &e) == Status::kOk) {
      size_t arena = 0;
      (void)m.verify_data(&e);
      if (Session::footprint(m, SessionOptions{}, &arena) == Status::kOk && arena <= (256u << 20)) {
        void* ab = std::aligned_alloc(64, (arena + 63) / 64 * 64);
        Session s;
        if (Session::init(m, SessionOptions{}, ab, arena, &s, &e) == Status::kOk) {
          const ModelInfo info = m.info();
          auto expect = [](Status got, Status want) {
            if (got != want) std::abort();
          };
          if (info.d_input) {  // a vector model: a prefill, a step, a NaN
            std::vector<float> x(3 * size_t{info.d_input}, 0.5f), y(info.d_output);
            expect(s.prefill_vectors(x.data(), 3, x.size(), y.data(), y.size()), Status::kOk);
            expect(s.step_vector(x.data(), info.d_input, y.data(), y.size()), Status::kOk);
            x[0] = std::numeric_limits<float>::quiet_NaN();
            expect(s.step_vector(x.data(), info.d_input, y.data(), y.size()), Status::kNonFinite);
          } else {
            const uint32_t V = info.vocab_size;
            std::vector<float> logits(V);
            const int32_t toks[3] = {0, static_cast<int32_t>(V - 1), static_cast<int32_t>(V / 2)};
            expect(s.prefill(toks, 3, logits.data(), V), Status::kOk);
            expect(s.step(static_cast<int32_t>(1 % V), logits.data(), V), Status::kOk);
            expect(s.step(static_cast<int32_t>(V), logits.data(), V), Status::kTokenRange);
            expect(s.step(-1, logits.data(), V), Status::kTokenRange);
          }
          std::vector<unsigned char> st(s.state_size());
          if (s.state_copy_out(st.data(), st.size()) != Status::kOk || s.state_copy_in(st.data(), st.size()) != Status::kOk)
            std::abort();  // a blob just copied out must be accepted back
        }
        std::free(ab);
      }
    }
    std::free(mem);
  }
  std::free(file);
  return 0;
}
