// Each architecture's forward pass over rows (arch/arch.h), on every compiled-in backend:
//   - the golden fixtures, stepped one row at a time, match the reference logits on each backend (not
//     only the one Model::init picks);
//   - one pass over rows of N different states (multi-stream) equals N single-row passes bit for bit,
//     logits and states;
//   - a session's prefill gives bit-identical state and logits for any prefill_chunk.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "arch/arch.h"
#include "backend/backends.h"
#include "kernels/kernels.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

const char* kCases[] = {"mamba1_awkward", "mamba1_ssm_bf16_sharded", "mamba1_hf_f16_tied", "../fuzz/byte_model",
                        "mamba2_groups",  "mamba2_tied_bf16",        "rwkv7_fla_world",    "rwkv7_blink_bf16",
                        "../fuzz/rwkv7_world_tiny", "granite_hybrid_nope", "granite_hybrid_rope_bf16",
                        "nemotron_h_bf16", "rwkv6_hf_world", "rwkv6_blink_bf16", "gated_deltanet_hf_bf16",
                        "gated_deltanet_gva_tied", "gla_hf_bf16", "gla_conv_tied", "retnet_hf_bf16",
                        "retnet_conv_tied"};

using rill_test::backends;

// Zeroed, 64-byte-aligned bytes (a fresh state block, or scratch), as an arena gives.
AlignedBuffer zeroed(size_t n) {
  AlignedBuffer b;
  REQUIRE(AlignedBuffer::allocate(n, &b) == Status::kOk);
  return b;
}
unsigned char* bytes(const AlignedBuffer& b) { return static_cast<unsigned char*>(b.data()); }

// Forward passes of up to max_rows rows on one backend, over caller-chosen state blocks.
struct Runner {
  const ModelImpl& m;
  const BackendImpl* be;
  AlignedBuffer scratch, work;
  Runner(const ModelImpl& model, const BackendImpl* backend, size_t max_rows)
      : m(model),
        be(backend),
        scratch(zeroed(find_arch(model.arch)->scratch_bytes(model, max_rows, false))),
        work(zeroed(backend->work_bytes(backend, max_rows, model.max_cols))) {}
  // tokens[i] advances states[i]; logits of the last n_logits rows.
  void run(const std::vector<int32_t>& tokens, std::vector<unsigned char*> states, float* logits, size_t n_logits) {
    const Exec x{be, nullptr, nullptr, bytes(scratch), bytes(work)};
    const Rows r{tokens.size(), tokens.data(), nullptr, states.data(), logits, n_logits};
    find_arch(m.arch)->forward(x, m, r);
  }
};

// `prompt` stepped token by token in a new session: the last step's logits and the state blob.
void step_each(const Model& model, const std::vector<int32_t>& prompt, std::vector<float>* logits,
               std::vector<unsigned char>* state) {
  const size_t V = model.info().vocab_size;
  OwnedSession s;
  REQUIRE(OwnedSession::create(model, SessionOptions{}, &s) == Status::kOk);
  logits->assign(V, 0.f);
  for (int32_t t : prompt) REQUIRE(s.session().step(t, logits->data(), V) == Status::kOk);
  state->assign(s.session().state_size(), 0);
  REQUIRE(s.session().state_copy_out(state->data(), state->size()) == Status::kOk);
}

}  // namespace

TEST_SUITE("golden") {
  TEST_CASE("every backend: golden fixtures stepped one row at a time match the reference logits") {
    for (const char* name : kCases) {
      CAPTURE(name);
      ConvertedModel l(golden_dir(name));
      const ModelImpl& m = *l.model().impl();
      const std::vector<int32_t> tokens = read_tokens(golden_dir(name) + "/tokens.txt");
      const Npy want = read_npy(golden_dir(name) + "/logits.npy");
      const size_t V = m.info.vocab_size;
      REQUIRE(want.data.size() == tokens.size() * V);
      float max_abs = 0;
      for (float v : want.data) max_abs = std::max(max_abs, std::fabs(v));
      for (const BackendImpl* be : backends()) {
        CAPTURE(be->name);
        Runner run(m, be, 1);
        const AlignedBuffer state = zeroed(m.state_bytes);
        std::vector<float> logits(V);
        float worst = 0;
        for (size_t t = 0; t < tokens.size(); ++t) {
          run.run({tokens[t]}, {bytes(state)}, logits.data(), 1);
          for (size_t v = 0; v < V; ++v) worst = std::max(worst, std::fabs(logits[v] - want.data[t * V + v]));
        }
        CHECK_MESSAGE(worst <= 1e-4f * max_abs, be->name << ": max diff " << worst << " of max |logit| " << max_abs);
      }
    }
  }
}

TEST_SUITE("arch") {
  TEST_CASE("multi-stream: one pass over rows of 3 states equals 3 single-row passes, bit for bit (f32, q8, q4)") {
    for (const char* name : {"mamba1_awkward", "mamba2_groups", "mamba2_hf_state128", "rwkv7_fla_world",
                             "granite_hybrid_rope_bf16", "nemotron_h_bf16", "rwkv6_hf_world", "gated_deltanet_gva_tied",
                             "gla_conv_tied", "retnet_conv_tied"}) {
      for (const char* dtype : {"f32", "q8", "q4"}) {
        CAPTURE(name);
        CAPTURE(dtype);
        ConvertedModel l(golden_dir(name), dtype);
        const ModelImpl& m = *l.model().impl();
        const size_t V = m.info.vocab_size, S = 3;
        for (const BackendImpl* be : backends()) {
          CAPTURE(be->name);
          Runner batched(m, be, S), single(m, be, 1);
          std::vector<AlignedBuffer> a, b;  // a: stepped together, b: stepped alone
          for (size_t s = 0; s < S; ++s) a.push_back(zeroed(m.state_bytes)), b.push_back(zeroed(m.state_bytes));
          std::vector<float> la(S * V), lb(V);
          for (size_t step = 0; step < 12; ++step) {
            std::vector<int32_t> toks(S);
            for (size_t s = 0; s < S; ++s) toks[s] = static_cast<int32_t>((step * 7 + s * 13 + 1) % V);
            batched.run(toks, {bytes(a[0]), bytes(a[1]), bytes(a[2])}, la.data(), S);
            for (size_t s = 0; s < S; ++s) {
              single.run({toks[s]}, {bytes(b[s])}, lb.data(), 1);
              REQUIRE_MESSAGE(std::memcmp(la.data() + s * V, lb.data(), V * 4) == 0, "step " << step << " stream " << s);
            }
          }
          for (size_t s = 0; s < S; ++s) CHECK(std::memcmp(bytes(a[s]), bytes(b[s]), m.state_bytes) == 0);
          // Streams that saw different tokens hold different states (the rows were not mixed up).
          CHECK(std::memcmp(bytes(a[0]), bytes(a[1]), m.state_bytes) != 0);
        }
      }
    }
  }

  // The default prefill runs every recurrence token by token. gla_hf_bf16's 128-key heads would take the
  // chunked form on AVX-512 with chunked_prefill (the next test): it is here to show that the default
  // does not.
  TEST_CASE("prefill: any prefill_chunk, with or without a pool, leaves the state and logits of stepping, bit for bit") {
    ThreadPool* pool = nullptr;
    REQUIRE(ThreadPool::create(2, &pool) == Status::kOk);
    for (const char* name : {"mamba1_awkward", "mamba2_groups", "mamba2_hf_state128", "rwkv7_fla_world",
                             "granite_hybrid_rope_bf16", "nemotron_h_bf16", "rwkv6_hf_world", "gated_deltanet_gva_tied",
                             "gla_conv_tied", "retnet_conv_tied", "gla_hf_bf16"}) {
      for (const char* dtype : {"f32", "q8", "q4"}) {
        if (std::strcmp(name, "gla_hf_bf16") == 0 && std::strcmp(dtype, "f32") != 0) continue;  // one dtype shows it
        CAPTURE(name);
        CAPTURE(dtype);
        ConvertedModel l(golden_dir(name), dtype);
        const Model& model = l.model();
        const size_t V = model.info().vocab_size;
        std::vector<int32_t> prompt(29);
        for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 11 + 3) % V);
        std::vector<float> want, got(V);
        std::vector<unsigned char> want_state;
        step_each(model, prompt, &want, &want_state);
        std::vector<unsigned char> got_state(want_state.size());
        struct Run {
          uint32_t chunk;
          bool pooled;
        };
        for (const Run run : {Run{1, false}, Run{3, false}, Run{8, false}, Run{13, false}, Run{64, false},
                              Run{1, true}, Run{3, true}, Run{13, true}}) {
          CAPTURE(run.chunk);
          CAPTURE(run.pooled);
          SessionOptions so;
          so.prefill_chunk = run.chunk;
          so.pool = run.pooled ? pool : nullptr;
          OwnedSession s;
          REQUIRE(OwnedSession::create(model, so, &s) == Status::kOk);
          REQUIRE(s.session().prefill(prompt.data(), prompt.size(), got.data(), V) == Status::kOk);
          REQUIRE(s.session().state_copy_out(got_state.data(), got_state.size()) == Status::kOk);
          CHECK(std::memcmp(got.data(), want.data(), V * 4) == 0);
          CHECK(got_state == want_state);
        }
      }
    }
    ThreadPool::destroy(pool);
  }

  // chunked_prefill: the chunked forms where the CPU table takes them (kernels.h). The wkv family's
  // (wkv_chunk_keys: AVX-512, heads of 128 keys or more, so GLA, RetNet and Gated DeltaNet at their
  // released head sizes; RWKV-6 and RWKV-7 heads have 64 keys and keep the recurrence, bit for bit), and
  // Mamba-2's SSD (ssd_chunk_state: AVX2 and AVX-512, states of 64 or more, so the released 128; the
  // small-state fixtures keep the recurrence).
  // f32: state and logits within 1e-5 of their largest value of stepping's. q8: a rounding difference can
  // flip an activation's int8 rounding in a later product, so the bound is the quantization's own: the
  // chunked q8 prefill stays closer to q8 stepping than q8 stepping is to f32 stepping, with the same
  // top token. Where the chunked form runs the bits differ (the test sees the path it claims to test).
  TEST_CASE("chunked_prefill: the chunked wkv and SSD leave stepping's state and logits within 1e-5 of the largest value (f32)") {
    if (std::getenv("RILL_TEST_UNDER_QEMU")) return;  // the large heads take minutes under emulation
    ThreadPool* pool = nullptr;
    REQUIRE(ThreadPool::create(2, &pool) == Status::kOk);
    const kernels::Table& table = kernels::active();
    struct Case {
      const char* name;
      size_t head_k;  // keys per head (wkv), or d_state (ssd)
      bool ssd = false;
    };
    auto max_abs = [](const float* p, size_t n) {
      float m = 0;
      for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(p[i]));
      return m;
    };
    auto max_diff = [](const float* a, const float* b, size_t n) {
      float m = 0;
      for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
      return m;
    };
    for (const Case c : {Case{"gated_deltanet_hf_bf16", 256}, Case{"gla_hf_bf16", 128}, Case{"retnet_hf_bf16", 256},
                         Case{"rwkv6_hf_world", 64}, Case{"rwkv7_fla_world", 64}, Case{"mamba2_hf_state128", 128, true},
                         Case{"mamba2_groups", 16, true}}) {
      const size_t from = c.ssd ? table.ssd_chunk_state : table.wkv_chunk_keys;
      const bool chunked = from && c.head_k >= from;
      std::vector<float> f32_logits;  // f32 stepping's last logits: q8's own distance from them bounds q8
      for (const char* dtype : {"f32", "q8"}) {
        const std::string name = c.name, dt = dtype;
        CAPTURE(name);
        CAPTURE(dt);
        CAPTURE(chunked);
        ConvertedModel l(golden_dir(c.name), dtype);
        const Model& model = l.model();
        const ModelImpl& m = *model.impl();
        const size_t V = model.info().vocab_size;
        std::vector<int32_t> prompt(83);  // 64-token passes, and 16-token chunks whole and partial
        for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 11 + 3) % V);
        std::vector<float> want, got(V);
        std::vector<unsigned char> want_state;
        step_each(model, prompt, &want, &want_state);
        std::vector<unsigned char> got_state(want_state.size());
        const bool f32 = dt == "f32";
        if (f32) f32_logits = want;
        const float lmax = max_abs(want.data(), V), quant = f32 ? 0.f : max_diff(want.data(), f32_logits.data(), V);
        for (const bool pooled : {false, true}) {
          CAPTURE(pooled);
          SessionOptions so;
          so.pool = pooled ? pool : nullptr;
          so.chunked_prefill = true;
          OwnedSession s;
          REQUIRE(OwnedSession::create(model, so, &s) == Status::kOk);
          REQUIRE(s.session().prefill(prompt.data(), prompt.size(), got.data(), V) == Status::kOk);
          REQUIRE(s.session().state_copy_out(got_state.data(), got_state.size()) == Status::kOk);
          const float ldiff = max_diff(got.data(), want.data(), V);
          if (f32) {
            CHECK_MESSAGE(ldiff <= 1e-5f * lmax, "logits: " << ldiff << " of " << lmax);
          } else {
            CHECK_MESSAGE(ldiff < quant, "logits: " << ldiff << " from q8 stepping; q8 stepping is " << quant << " from f32");
            CHECK(std::max_element(got.begin(), got.end()) - got.begin() == std::max_element(want.begin(), want.end()) - want.begin());
          }
          // Slot by slot (f32): float slots within 1e-5 of the slot's largest value, others equal.
          for (uint32_t k = 0; f32 && k < m.n_state_slots; ++k) {
            const StateSlot& slot = m.state_slots[k];
            const std::string slot_name = slot.name;
            CAPTURE(slot_name);
            const unsigned char* a = want_state.data() + Session::kStateHeaderBytes + slot.offset;
            const unsigned char* b = got_state.data() + Session::kStateHeaderBytes + slot.offset;
            if (slot.type != StateType::kF32) {
              CHECK(std::memcmp(a, b, slot.bytes()) == 0);
              continue;
            }
            std::vector<float> x(slot.count), y(slot.count);
            std::memcpy(x.data(), a, slot.bytes());
            std::memcpy(y.data(), b, slot.bytes());
            const float smax = max_abs(x.data(), x.size()), sdiff = max_diff(x.data(), y.data(), x.size());
            CHECK_MESSAGE(sdiff <= 1e-5f * smax, "state: " << sdiff << " of " << smax);
          }
          char line[160], from[64] = "";
          if (!f32) std::snprintf(from, sizeof from, " (q8 stepping from f32: %.3g)", quant);
          std::snprintf(line, sizeof line, "%s %s %s: logits %.3g of %.3g%s", c.name, dtype,
                        chunked ? "chunked" : "recurrence", ldiff, lmax, from);
          MESSAGE(line);
          if (chunked) CHECK_MESSAGE(got_state != want_state, "the chunked form left stepping's bits: did it run?");
          else CHECK(got_state == want_state);
        }
      }
    }
    ThreadPool::destroy(pool);
  }

  TEST_CASE("the arena layout: footprint grows with prefill_chunk, and an out-of-range chunk is refused") {
    ConvertedModel l(golden_dir("mamba1_awkward"));
    const Model& model = l.model();
    size_t b1 = 0, b8 = 0, b64 = 0, bad = 0;
    SessionOptions so;
    so.prefill_chunk = 1;
    REQUIRE(Session::footprint(model, so, &b1) == Status::kOk);
    so.prefill_chunk = 8;
    REQUIRE(Session::footprint(model, so, &b8) == Status::kOk);
    so.prefill_chunk = 64;
    REQUIRE(Session::footprint(model, so, &b64) == Status::kOk);
    CHECK(b1 < b8);
    CHECK(b8 < b64);
    CHECK(b1 > model.info().state_bytes);
    for (uint32_t c : {0u, 4097u}) {
      so.prefill_chunk = c;
      CHECK(Session::footprint(model, so, &bad) == Status::kInvalidArgument);
      alignas(64) static unsigned char arena[1 << 16];
      Session s;
      Error e;
      CHECK(Session::init(model, so, arena, sizeof arena, &s, &e) == Status::kInvalidArgument);
      CHECK(std::string(e.message).find("prefill_chunk") != std::string::npos);
    }
    // chunked_prefill adds the chunked forms' workspace to the scratch of the wkv family and Mamba-2 only: exactly
    // H * wkv_work_floats(K, V) floats (this GLA: 3 heads of 8 keys and 16 values), rounded to kAlign.
    SessionOptions off, on;
    on.chunked_prefill = true;
    size_t a = 0, b = 0;
    REQUIRE(Session::footprint(model, off, &a) == Status::kOk);
    REQUIRE(Session::footprint(model, on, &b) == Status::kOk);
    CHECK(a == b);  // Mamba-1: no chunked form
    ConvertedModel gla(golden_dir("gla_conv_tied"));
    const size_t H = 3, K = 8, V = 16;  // its config: 3 heads, hidden 48, expand_k 0.5, expand_v 1
    REQUIRE(Session::footprint(gla.model(), off, &a) == Status::kOk);
    REQUIRE(Session::footprint(gla.model(), on, &b) == Status::kOk);
    CHECK(b - a == align_up(H * wkv_work_floats(K, V) * sizeof(float), kAlign));
    // And the chunked SSD's to Mamba-2's: H * ssd_work_floats(P) (mamba2_groups: 4 heads of 24 channels).
    ConvertedModel m2(golden_dir("mamba2_groups"));
    REQUIRE(Session::footprint(m2.model(), off, &a) == Status::kOk);
    REQUIRE(Session::footprint(m2.model(), on, &b) == Status::kOk);
    CHECK(b - a == align_up(4 * ssd_work_floats(24) * sizeof(float), kAlign));
  }
}
