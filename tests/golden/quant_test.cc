// Quantized weights against the f32 path of the same checkpoint: per-step logits' top-1 agreement,
// mean KL(p_f32 || p_q) and max |difference|, each bounded per case (the bounds, and what was measured,
// are in the table of the test); q4 at both byte layouts. The demo model's bits per byte at each dtype
// are bounded by golden/quant_bpb.cmake, the real shapes' KL by checkpoints/quant_real_shapes.cmake.
#include <doctest/doctest.h>

#include <array>
#include <cmath>

#include "rill_generated.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

struct Stats {
  double top1 = 0, mean_kl = 0, max_abs = 0;
};

// Steps both models over `tokens` and compares their logits over the first n_valid ids.
Stats compare(const std::string& ckpt, const std::string& dtype, const std::vector<int32_t>& tokens, size_t n_valid,
              const std::string& layout = "rows16") {
  TempDir tmp;
  const std::string a = tmp.file("f32.rill"), b = tmp.file("q.rill");
  REQUIRE(convert_ckpt(ckpt, a, "f32").empty());
  const std::string err = convert_ckpt(ckpt, b, dtype, true, layout);
  REQUIRE_MESSAGE(err.empty(), err);
  LoadedModel ma, mb;
  REQUIRE(LoadedModel::open(a.c_str(), ModelOptions{}, &ma) == Status::kOk);
  REQUIRE(LoadedModel::open(b.c_str(), ModelOptions{}, &mb) == Status::kOk);
  OwnedSession sa, sb;
  SessionOptions so;
  so.context_full = ContextFull::kSlide;  // a hybrid's 400 tokens run past its context of 128 / 96
  REQUIRE(OwnedSession::create(ma.model(), so, &sa) == Status::kOk);
  REQUIRE(OwnedSession::create(mb.model(), so, &sb) == Status::kOk);
  const size_t V = ma.model().info().vocab_size;
  if (n_valid == 0 || n_valid > V) n_valid = V;
  std::vector<float> la(V), lb(V);
  Stats st;
  for (int32_t t : tokens) {
    REQUIRE(sa.session().step(t, la.data(), V) == Status::kOk);
    REQUIRE(sb.session().step(t, lb.data(), V) == Status::kOk);
    size_t ia = 0, ib = 0;
    double ma_ = la[0], mb_ = lb[0];
    for (size_t v = 0; v < n_valid; ++v) {
      if (la[v] > la[ia]) ia = v;
      if (lb[v] > lb[ib]) ib = v;
      ma_ = std::max<double>(ma_, la[v]), mb_ = std::max<double>(mb_, lb[v]);
      st.max_abs = std::max<double>(st.max_abs, std::fabs(la[v] - lb[v]));
    }
    double za = 0, zb = 0;
    for (size_t v = 0; v < n_valid; ++v) za += std::exp(la[v] - ma_), zb += std::exp(lb[v] - mb_);
    double kl = 0;
    for (size_t v = 0; v < n_valid; ++v) {
      const double lpa = la[v] - ma_ - std::log(za), lpb = lb[v] - mb_ - std::log(zb);
      kl += std::exp(lpa) * (lpa - lpb);
    }
    st.top1 += ia == ib;
    st.mean_kl += kl;
  }
  st.top1 /= static_cast<double>(tokens.size());
  st.mean_kl /= static_cast<double>(tokens.size());
  return st;
}

}  // namespace

TEST_SUITE("quant") {
  TEST_CASE("the row layout (format 1.2) and the 16-row layout (1.3) run the same quantized model") {
    // Both layouts hold the same values and the kernels make the same integer sums per 32-column block;
    // only the order of the float additions differs, so the logits agree to float rounding.
    const std::vector<int32_t> tokens = {1, 7, 3, 9, 2, 11, 5, 4, 8, 6, 10, 1, 3, 3, 7, 2, 9, 4, 6, 5};
    for (const char* c : {"mamba1_hf_f16_tied", "mamba2_groups", "rwkv7_fla_world"}) {
      for (const char* dtype : {"q8", "q4"}) {
        CAPTURE(c);
        CAPTURE(dtype);
        TempDir tmp;
        const std::string a = tmp.file("rows.rill"), b = tmp.file("rows16.rill");
        REQUIRE(convert_ckpt(golden_dir(c), a, dtype, true, "rows").empty());
        REQUIRE(convert_ckpt(golden_dir(c), b, dtype, true, "rows16").empty());
        LoadedModel ma, mb;
        REQUIRE(LoadedModel::open(a.c_str(), ModelOptions{}, &ma) == Status::kOk);
        REQUIRE(LoadedModel::open(b.c_str(), ModelOptions{}, &mb) == Status::kOk);
        const std::string sa_bytes = read_file(a);
        CHECK(fb::GetSizePrefixedModel(sa_bytes.data())->format_minor() == 2);
        const std::string sb_bytes = read_file(b);
        const fb::Model* fbm = fb::GetSizePrefixedModel(sb_bytes.data());
        CHECK(fbm->format_minor() == 3);
        size_t interleaved = 0;
        for (const fb::Layer* l : *fbm->layers())
          for (const fb::Tensor* t : *l->tensors())
            interleaved += t->quant() && (t->quant()->scheme() == fb::QuantScheme::PerRowRows16 ||
                                          t->quant()->scheme() == fb::QuantScheme::GroupedRows16);
        CHECK(interleaved > 0);
        OwnedSession sa, sb;
        REQUIRE(OwnedSession::create(ma.model(), SessionOptions{}, &sa) == Status::kOk);
        REQUIRE(OwnedSession::create(mb.model(), SessionOptions{}, &sb) == Status::kOk);
        const size_t V = ma.model().info().vocab_size;
        std::vector<float> la(V), lb(V);
        for (int32_t t : tokens) {
          REQUIRE(sa.session().step(t, la.data(), V) == Status::kOk);
          REQUIRE(sb.session().step(t, lb.data(), V) == Status::kOk);
          double peak = 0, diff = 0;
          for (size_t v = 0; v < V; ++v)
            peak = std::max<double>(peak, std::fabs(la[v])), diff = std::max<double>(diff, std::fabs(la[v] - lb[v]));
          REQUIRE_MESSAGE(diff <= 1e-4 * peak + 1e-5, "token " << t << ": max|diff| " << diff << " of " << peak);
        }
      }
    }
  }

  TEST_CASE("q8 and q4 (both layouts) stay within each case's bounds on top-1 agreement and mean KL against f32") {
    struct Case {
      std::string dir;
      size_t n_valid;
      std::vector<int32_t> tokens;
      double q8_top1, q8_kl, q4_top1, q4_kl;
    };
    // Bounds, and (measured on this machine, AVX-512 VNNI tables) q8 top-1 / KL | q4 top-1 / KL:
    //   mamba1_hf_f16_tied  q8 >= 99 %, <= 1e-3 | q4 >= 98 %, <= 3.5e-4  (100 % 4.7e-6 | 100 % 2.5e-4)
    //   mamba2_groups       q8 >= 99 %, <= 1e-3 | q4 >= 83 %, <= 5.5e-3  (99.75 % 7.4e-5 | 87.5 % 4.3e-3)
    //   rwkv7_fla_world     q8 >= 93 %, <= 1e-3 | q4 >= 60 %, <= 5.2e-2  (95.75 % 4.8e-4 | 65.5 % 4.1e-2)
    //   granite_hybrid_nope q8 >= 99 %, <= 1e-4 | q4 >= 97 %, <= 4e-4    (100 % 6.0e-6 | 100 % 3.1e-4)
    //   nemotron_h_bf16     q8 >= 93 %, <= 2e-3 | q4 >= 55 %, <= 7.5e-2  (95.5 % 6.6e-4 | 62.75 % 6.3e-2)
    //   rwkv6_hf_world      q8 >= 94 %, <= 5e-4 | q4 >= 62 %, <= 3e-2    (96.5 % 2.4e-4 | 68.25 % 2.3e-2)
    //   gated_deltanet_hf_bf16 q8 >= 95 %, <= 5e-4 | q4 >= 67 %, <= 3.5e-2 (97 % 2.8e-4 | 73 % 2.6e-2)
    //   gla_hf_bf16         q8 >= 94 %, <= 6e-4 | q4 >= 56 %, <= 4.5e-2  (96.25 % 3.6e-4 | 61 % 3.9e-2)
    //   retnet_hf_bf16      q8 >= 91 %, <= 6e-4 | q4 >= 61 %, <= 4.5e-2  (93.5 % 3.9e-4 | 66.25 % 3.4e-2)
    //   demo model          q8 >= 99 %, <= 1e-3 | q4 >= 93 %, <= 5.5e-3  (99.3 % 1.1e-4 | 95.2 % 4.3e-3)
    // The q4 KL bounds are below what the q4 quantizer gave before it searched each group's scale
    // (4.2e-4, 6.1e-3, 6.0e-2, 5.0e-4, 8.3e-2, 7.5e-3): a return to the plain absmax / 7 scale fails.
    // Random-weight RWKV-6's, RWKV-7's, Gated DeltaNet's, GLA's, RetNet's and the small Nemotron-H's logits are nearly flat (near-ties, max |logit| 3.7),
    // hence their lower top-1 bounds. The hybrids run past their context by sliding.
    std::vector<Case> cases;
    // Golden checkpoints over 400 pseudo-random tokens (the reference is the f32 path, so any
    // sequence serves; 400 steps let a 99 % bound mean something).
    const std::pair<const char*, std::array<double, 4>> golden[] = {{"mamba1_hf_f16_tied", {0.99, 1e-3, 0.98, 3.5e-4}},
                                                                    {"mamba2_groups", {0.99, 1e-3, 0.83, 5.5e-3}},
                                                                    {"rwkv7_fla_world", {0.93, 1e-3, 0.60, 5.2e-2}},
                                                                    {"granite_hybrid_nope", {0.99, 1e-4, 0.97, 4e-4}},
                                                                    {"nemotron_h_bf16", {0.93, 2e-3, 0.55, 7.5e-2}},
                                                                    {"rwkv6_hf_world", {0.94, 5e-4, 0.62, 3e-2}},
                                                                    {"gated_deltanet_hf_bf16", {0.95, 5e-4, 0.67, 3.5e-2}},
                                                                    {"gla_hf_bf16", {0.94, 6e-4, 0.56, 4.5e-2}},
                                                                    {"retnet_hf_bf16", {0.91, 6e-4, 0.61, 4.5e-2}}};
    for (const auto& [c, b] : golden) {
      const uint32_t V = static_cast<uint32_t>(read_npy(golden_dir(c) + "/logits.npy").shape[1]);
      std::vector<int32_t> toks(400);
      uint64_t x = 12345;
      for (int32_t& t : toks) x = x * 6364136223846793005ull + 1442695040888963407ull, t = static_cast<int32_t>((x >> 33) % V);
      cases.push_back({golden_dir(c), 0, toks, b[0], b[1], b[2], b[3]});
    }
    // The demo model over 600 bytes of held-out text.
    const std::string text = read_file(src_dir() + "/examples/demo_model/heldout.txt").substr(0, 600);
    std::vector<int32_t> bytes(text.begin(), text.end());
    for (int32_t& b : bytes) b &= 0xFF;
    cases.push_back({src_dir() + "/examples/demo_model/checkpoint", 256, bytes, 0.99, 1e-3, 0.93, 5.5e-3});
    for (const Case& c : cases) {
      CAPTURE(c.dir);
      const Stats q8 = compare(c.dir, "q8", c.tokens, c.n_valid);
      MESSAGE(c.dir.substr(c.dir.find_last_of('/', c.dir.size() - 12) + 1) << ": q8 top-1 " << q8.top1 << " mean KL "
              << q8.mean_kl << " max|diff| " << q8.max_abs);
      CHECK(q8.top1 >= c.q8_top1);
      CHECK(q8.mean_kl <= c.q8_kl);
      for (const std::string layout : {"rows16", "rows"}) {
        CAPTURE(layout);
        const Stats q4 = compare(c.dir, "q4", c.tokens, c.n_valid, layout);
        MESSAGE("  q4 (" << layout << ") top-1 " << q4.top1 << " mean KL " << q4.mean_kl << " max|diff| " << q4.max_abs);
        CHECK(q4.top1 >= c.q4_top1);
        CHECK(q4.mean_kl <= c.q4_kl);
      }
    }
  }
}
