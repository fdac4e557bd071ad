// The architecture specs (runtime/src/arch/<arch>.h) hold the converter and the runtime to one
// description of each architecture:
//   - every fixture of every architecture, converted, holds exactly the tensors and state tensors its
//     spec lists for its hyper-parameters: names, shapes, and dtypes the storage class allows;
//   - a file missing any one of them, or holding one of another shape, is refused naming it;
//   - a converter mapping that leaves a spec tensor out, or maps one the spec lacks, does not finish;
//   - each spec's Params reader and writer agree field by field;
//   - a scratch table's buffers lie where it says: one after another, or over an earlier one.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <set>

#include "arch/bind.h"
#include "arch/mamba1.h"
#include "arch/mamba2.h"
#include "arch/mamba2_hybrid.h"
#include "arch/recurrent_gemma.h"
#include "arch/gated_deltanet.h"
#include "arch/gla.h"
#include "arch/retnet.h"
#include "arch/rwkv6.h"
#include "arch/rwkv7.h"
#include "arch/s4d.h"
#include "arch_common.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

// Every checkpoint fixture: each architecture, its layouts and its flags (biases, ties, groups, pools,
// vector heads, layer kinds).
const char* kFixtures[] = {
    "tests/golden/mamba1_awkward",          "tests/golden/mamba1_hf_f16_tied",      "tests/golden/mamba1_ssm_bf16_sharded",
    "tests/golden/mamba1_vector",           "tests/golden/mamba2_groups",           "tests/golden/mamba2_tied_bf16",
    "tests/golden/mamba2_vector",           "tests/golden/rwkv7_fla_world",         "tests/golden/rwkv7_blink_bf16",
    "tests/golden/s4d_postnorm_mean",       "tests/golden/s4d_prenorm_none_wide",   "tests/golden/recurrent_gemma_awkward",
    "tests/golden/recurrent_gemma_tied_bf16", "examples/demo_model/checkpoint",     "examples/sensor_demo/checkpoint",
    "tests/golden/granite_hybrid_nope",     "tests/golden/granite_hybrid_rope_bf16", "tests/golden/nemotron_h_bf16",
    "tests/golden/rwkv6_hf_world",          "tests/golden/rwkv6_blink_bf16",        "tests/golden/gated_deltanet_hf_bf16",
    "tests/golden/gated_deltanet_gva_tied", "tests/golden/gla_hf_bf16",           "tests/golden/gla_conv_tied",
    "tests/golden/retnet_hf_bf16",          "tests/golden/retnet_conv_tied"};

struct FileTensorInfo {
  std::vector<uint64_t> shape;
  DType dtype;
};

std::vector<uint64_t> shape_of(const flatbuffers::Vector<uint64_t>* v) { return std::vector<uint64_t>(v->begin(), v->end()); }

bool allowed(spec::DClass c, DType d) {
  switch (c) {
    case spec::DClass::kF32: return d == DType::kF32;
    case spec::DClass::kFloat: return d == DType::kF32 || d == DType::kF16;
    default: return d == DType::kF32 || d == DType::kF16 || d == DType::kI8 || d == DType::kI4;
  }
}

// The file against its spec: the same tensor names at each level, each in the spec's shape and in a
// dtype its class allows (and, in a quantized file, sensitive and float-only matrices not quantized);
// the same state tensors in the same order.
template <class S>
void check_file(const fb::Model* m, const std::string& bytes, bool quantized) {
  typename S::Hyper h;
  Error e;
  REQUIRE_MESSAGE(S::read(*m, &h, &e) == Status::kOk, e.message);
  REQUIRE_MESSAGE(spec::check_hyper<S>(&h, &e) == Status::kOk, e.message);
  const FileView fv{reinterpret_cast<const unsigned char*>(bytes.data()), m, m->data_offset(), m->data_size(), nullptr};
  spec::Ends ends;
  REQUIRE_MESSAGE(file_ends(fv, S::kName, S::kEnds, h.d_model, h.vocab, h.tied_head, &ends, &e) == Status::kOk,
                  e.message);
  std::map<std::pair<int, std::string>, FileTensorInfo> in_file;
  for (const fb::Tensor* t : *m->tensors())
    in_file[{-1, t->name()->str()}] = {shape_of(t->shape()), static_cast<DType>(t->dtype())};
  for (uint32_t i = 0; i < m->layers()->size(); ++i)
    for (const fb::Tensor* t : *m->layers()->Get(i)->tensors())
      in_file[{static_cast<int>(i), t->name()->str()}] = {shape_of(t->shape()), static_cast<DType>(t->dtype())};
  size_t listed = 0, quantized_seen = 0;
  auto kind = [m](uint32_t i) { return m->layers()->Get(i)->kind(); };
  const bool walked = spec::for_each_tensor<S>(h, ends, kind, {}, [&](const spec::TensorEntry& t) {
    const std::string where = (t.layer < 0 ? std::string("") : "layers." + std::to_string(t.layer) + ".") + t.name;
    CAPTURE(where);
    ++listed;
    const auto it = in_file.find({t.layer, t.name});
    CHECK_MESSAGE(it != in_file.end(), "the spec lists " << where << ", the file lacks it");
    if (it == in_file.end()) return true;
    CHECK(it->second.shape == std::vector<uint64_t>(t.shape, t.shape + t.ndim));
    CHECK_MESSAGE(allowed(t.dclass, it->second.dtype), dtype_name(it->second.dtype) << " for " << spec::dclass_name(t.dclass));
    const bool q = it->second.dtype == DType::kI8 || it->second.dtype == DType::kI4;
    quantized_seen += q;
    if (quantized) CHECK_MESSAGE((t.dclass == spec::DClass::kQuantizable || !q), "a sensitive matrix was quantized");
    return true;
  });
  CHECK(walked);
  CHECK(listed == in_file.size());  // and the file holds nothing else
  MESSAGE(std::string(S::kName) << ": " << listed << " tensors as the spec lists them, " << quantized_seen << " quantized");
  size_t i = 0;
  spec::for_each_state<S>(h, kind, {}, [&](const spec::StateEntry& s) {
    REQUIRE(i < m->state()->tensors()->size());
    const fb::StateTensor* t = m->state()->tensors()->Get(static_cast<flatbuffers::uoffset_t>(i++));
    CHECK(t->name()->str() == s.name);
    CHECK(shape_of(t->shape()) == std::vector<uint64_t>(s.shape, s.shape + s.ndim));
    CHECK(static_cast<unsigned>(t->dtype()) == static_cast<unsigned>(s.type));
    return true;
  });
  CHECK(i == m->state()->tensors()->size());
}

void check_any(const std::string& bytes, bool quantized) {
  const fb::Model* m = fb::GetSizePrefixedModel(bytes.data());
  switch (m->arch()) {
    case fb::Arch::Mamba1: return check_file<spec::Mamba1>(m, bytes, quantized);
    case fb::Arch::Mamba2: return check_file<spec::Mamba2>(m, bytes, quantized);
    case fb::Arch::RWKV7: return check_file<spec::Rwkv7>(m, bytes, quantized);
    case fb::Arch::RWKV6: return check_file<spec::Rwkv6>(m, bytes, quantized);
    case fb::Arch::GatedDeltaNet: return check_file<spec::GatedDeltaNet>(m, bytes, quantized);
    case fb::Arch::GLA: return check_file<spec::Gla>(m, bytes, quantized);
    case fb::Arch::RetNet: return check_file<spec::RetNet>(m, bytes, quantized);
    case fb::Arch::S4D: return check_file<spec::S4d>(m, bytes, quantized);
    case fb::Arch::RecurrentGemma: return check_file<spec::RecurrentGemma>(m, bytes, quantized);
    case fb::Arch::Mamba2Hybrid: return check_file<spec::Mamba2Hybrid>(m, bytes, quantized);
    default: FAIL("architecture " << static_cast<int>(m->arch()) << " has no spec here");
  }
}

Status init_bytes(std::string bytes, Error* e) {
  AlignedBuffer data, mem;
  REQUIRE(AlignedBuffer::allocate(bytes.size(), &data) == Status::kOk);
  std::memcpy(data.data(), bytes.data(), bytes.size());
  size_t need = 0;
  Status s = Model::footprint(data.data(), bytes.size(), &need, e);
  if (s != Status::kOk) return s;
  REQUIRE(AlignedBuffer::allocate(need, &mem) == Status::kOk);
  Model model;
  s = Model::init(data.data(), bytes.size(), ModelOptions{}, mem.data(), need, &model, e);
  model.release();
  return s;
}

// Every tensor of the file in turn: renamed (so the file lacks it), then with its first dimension
// one larger. Each must be refused, naming the tensor.
void check_each_tensor_refused(const std::string& bytes) {
  const fb::Model* m0 = fb::GetSizePrefixedModel(bytes.data());
  struct Where {
    int layer;
    size_t index;
    std::string name;
  };
  std::vector<Where> all;
  for (size_t k = 0; k < m0->tensors()->size(); ++k) all.push_back({-1, k, m0->tensors()->Get(k)->name()->str()});
  for (size_t k = 0; k < m0->layers()->Get(0)->tensors()->size(); ++k)  // layer 0 (and the last, when it differs)
    all.push_back({0, k, "layers.0." + m0->layers()->Get(0)->tensors()->Get(k)->name()->str()});
  const int last = static_cast<int>(m0->layers()->size()) - 1;
  if (m0->layers()->Get(last)->kind() != m0->layers()->Get(0)->kind())
    for (size_t k = 0; k < m0->layers()->Get(last)->tensors()->size(); ++k)
      all.push_back({last, k, "layers." + std::to_string(last) + "." + m0->layers()->Get(last)->tensors()->Get(k)->name()->str()});
  for (const Where& w : all) {
    CAPTURE(w.name);
    for (int how = 0; how < 2; ++how) {
      std::string b = bytes;
      fb::Model* m = fb::GetMutableSizePrefixedModel(&b[0]);
      fb::Tensor* t = w.layer < 0 ? m->mutable_tensors()->GetMutableObject(w.index)
                                  : m->mutable_layers()->GetMutableObject(w.layer)->mutable_tensors()->GetMutableObject(w.index);
      if (how == 0) {
        char* name = const_cast<char*>(t->name()->c_str());
        name[0] = name[0] == 'Q' ? 'Z' : 'Q';  // no spec names a tensor starting with Q or Z
      } else {
        t->mutable_shape()->Mutate(0, t->shape()->Get(0) + 1);
      }
      Error e;
      const Status s = init_bytes(b, &e);
      CHECK_MESSAGE(s != Status::kOk, (how ? "grown " : "renamed ") << w.name << " was accepted");
      CHECK_MESSAGE(std::string(e.message).find(w.name) != std::string::npos, (how ? "grown: " : "renamed: ") << e.message);
    }
  }
}

}  // namespace

TEST_SUITE("spec") {
  TEST_CASE("every fixture of every architecture holds exactly what its spec lists (f32 and q4)") {
    std::set<int> archs;
    for (const std::string fixture : kFixtures) {
      CAPTURE(fixture);
      for (const std::string dtype : {"f32", "q4"}) {
        CAPTURE(dtype);
        TempDir tmp;
        const std::string err = convert_ckpt(src_dir() + "/" + fixture, tmp.file("m.rill"), dtype);
        REQUIRE_MESSAGE(err.empty(), err);
        const std::string bytes = read_file(tmp.file("m.rill"));
        archs.insert(static_cast<int>(fb::GetSizePrefixedModel(bytes.data())->arch()));
        check_any(bytes, dtype == "q4");
      }
    }
    CHECK(archs.size() == 10);  // all ten architectures were seen
  }

  TEST_CASE("a file lacking any one spec tensor, or holding one of another shape, is refused naming it") {
    for (const char* fixture : {"tests/golden/mamba1_awkward", "tests/golden/mamba2_groups", "tests/golden/rwkv7_fla_world",
                                "tests/golden/s4d_postnorm_mean", "tests/golden/recurrent_gemma_awkward",
                                "tests/golden/mamba1_vector", "tests/golden/granite_hybrid_rope_bf16",
                                "tests/golden/rwkv6_hf_world", "tests/golden/gated_deltanet_gva_tied",
                                "tests/golden/gla_conv_tied", "tests/golden/retnet_conv_tied"}) {
      CAPTURE(std::string(fixture));
      TempDir tmp;
      REQUIRE(convert_ckpt(src_dir() + "/" + fixture, tmp.file("m.rill")).empty());
      const std::string bytes = read_file(tmp.file("m.rill"));
      Error e;
      REQUIRE_MESSAGE(init_bytes(bytes, &e) == Status::kOk, e.message);
      check_each_tensor_refused(bytes);
    }
  }

  TEST_CASE("a converter mapping that misses a spec tensor, or names one the spec lacks, does not finish") {
    using S = spec::Mamba1;
    auto ck = convert::Checkpoint::open_dir(golden_dir("mamba1_awkward"));
    S::Hyper h{.d_model = 40, .n_layer = 2, .vocab = 37, .d_inner = 80, .d_state = 8, .d_conv = 3, .dt_rank = 5,
               .norm_eps = 1e-5f, .tied_head = false, .in_proj_bias = false, .out_proj_bias = false, .conv_bias = true};
    const std::vector<fb::LayerKind> kinds(2, fb::LayerKind::Mamba1Mixer);
    const spec::Ends ends = convert::make_ends(S::kEnds, 40, 37, false, convert::VectorIo{});
    convert::FileContent c;
    convert::begin_content<S>(&h, kinds, "test", &c);
    // A mapping of every spec tensor but layers.1.D (whose checkpoint tensor is read, but mapped nowhere).
    {
      convert::TensorSet ts = convert::TensorSet::of<S>(*ck, &c, h, ends, fb::DType::F32);
      ts.lm_tensors("backbone.embeddings.weight");
      for (int i = 0; i < 2; ++i) {
        const std::string m = "backbone.layers." + std::to_string(i) + ".mixer.";
        ts.copy("backbone.layers." + std::to_string(i) + ".norm.weight", "norm", i);
        ts.copy(m + "in_proj.weight", "in_proj", i);
        ts.conv_weight(m + "conv1d.weight", i);
        ts.copy(m + "conv1d.bias", "conv_bias", i);
        ts.copy(m + "x_proj.weight", "x_proj", i);
        ts.copy(m + "dt_proj.weight", "dt_proj", i);
        ts.copy(m + "dt_proj.bias", "dt_bias", i);
        ts.add("A", i, ts.expect(m + "A_log", {80, 8}));
        if (i == 0) ts.copy(m + "D", "D", i);
        else ts.expect(m + "D", {80});
        ts.copy(m + "out_proj.weight", "out_proj", i);
      }
      try {
        ts.finish("test");
        FAIL("finished without layers.1.D");
      } catch (const convert::ConvertError& x) {
        CHECK(std::string(x.what()).find("no checkpoint tensor was mapped onto layers.1.D") != std::string::npos);
      }
    }
    {  // A tensor the spec does not have, and one the hyper-parameters leave out (in_proj_bias is off).
      convert::TensorSet ts = convert::TensorSet::of<S>(*ck, &c, h, ends, fb::DType::F32);
      CHECK_THROWS_WITH_AS(ts.add("B", 0, ck->find("backbone.layers.0.mixer.D")),
                           doctest::Contains("the spec has no tensor layers.0.B"), convert::ConvertError);
      CHECK_THROWS_WITH_AS(ts.add("in_proj_bias", 1, ck->find("backbone.layers.0.mixer.D")),
                           doctest::Contains("the spec has no tensor layers.1.in_proj_bias"), convert::ConvertError);
    }
    {  // A checkpoint tensor of another shape than the spec's is a problem named with both shapes.
      convert::TensorSet ts = convert::TensorSet::of<S>(*ck, &c, h, ends, fb::DType::F32);
      h.d_state = 9;  // the spec's x_proj is then [5 + 18, 80]
      convert::TensorSet wrong = convert::TensorSet::of<S>(*ck, &c, h, ends, fb::DType::F32);
      wrong.copy("backbone.layers.0.mixer.x_proj.weight", "x_proj", 0);
      CHECK_THROWS_WITH_AS(wrong.finish("test"), doctest::Contains("x_proj.weight: expected [23, 80], got [21, 80]"),
                           convert::ConvertError);
      h.d_state = 8;
    }
    {  // The hyper-parameters are checked with the runtime's ranges before anything is planned.
      S::Hyper big = h;
      big.d_state = 5000;
      convert::FileContent c2;
      CHECK_THROWS_WITH_AS(convert::begin_content<S>(&big, kinds, "test", &c2),
                           doctest::Contains("mamba1 d_state = 5000 is outside [1, 1024]"), convert::ConvertError);
    }
  }

  TEST_CASE("a scratch table: buffers one after another, kAlign-aligned; one `over` another shares its memory, "
            "sized for the larger") {
    struct Scratch {
      float *a, *b, *c, *d;
      int64_t* p;
    };
    using H = spec::Mamba1::Hyper;
    constexpr Buffer<H, Scratch> kTable[] = {{&Scratch::a, 3},
                                             {&Scratch::b, &H::d_model},
                                             {.f32 = nullptr, .width = 1, .i64 = &Scratch::p},
                                             {.f32 = &Scratch::c, .width = &H::d_inner, .over = &Scratch::b},
                                             {.f32 = &Scratch::d, .width = 2, .over = &Scratch::c}};
    static_assert(overlays_valid(kTable));
    constexpr Buffer<H, Scratch> kLater[] = {{.f32 = &Scratch::c, .width = 1, .over = &Scratch::b}, {&Scratch::b, 1}};
    static_assert(!overlays_valid(kLater));
    H h{};
    h.d_model = 40;
    h.d_inner = 80;
    const size_t rows = 5;
    // a: 3 * 5 floats -> 64 B; b with c and d over it: max(40, 80, 2) * 5 floats = 1600 B; p: 5 int64 -> 64 B.
    CHECK(carve(kTable, h, rows, nullptr, nullptr) == 64 + 1600 + 64);
    alignas(64) static unsigned char base[4096];
    Scratch s{};
    CHECK(carve(kTable, h, rows, base, &s) == 64 + 1600 + 64);
    CHECK(reinterpret_cast<unsigned char*>(s.a) == base);
    CHECK(reinterpret_cast<unsigned char*>(s.b) == base + 64);
    CHECK(s.c == s.b);
    CHECK(s.d == s.b);
    CHECK(reinterpret_cast<unsigned char*>(s.p) == base + 64 + 1600);
    h.d_inner = 8;  // the shared memory follows the largest: now b's own 40 * 5 floats
    CHECK(carve(kTable, h, rows, nullptr, nullptr) == 64 + 832 + 64);
  }

  TEST_CASE("each spec's Params writer and reader agree field by field") {
    auto round_trip = [](auto* spec_tag, auto h) {
      using S = std::remove_pointer_t<decltype(spec_tag)>;
      flatbuffers::FlatBufferBuilder b;
      b.ForceDefaults(true);
      const auto params = S::write(b, h);
      fb::ModelBuilder mb(b);
      mb.add_params_type(S::kFileParams);
      mb.add_params(params);
      b.Finish(mb.Finish());
      const fb::Model* m = fb::GetModel(b.GetBufferPointer());
      typename S::Hyper back{};
      Error e;
      REQUIRE(S::read(*m, &back, &e) == Status::kOk);
      CHECK(back == h);
    };
    // Distinct values in every field, so two fields swapped by the writer or the reader differ.
    round_trip(static_cast<spec::Mamba1*>(nullptr),
               spec::Mamba1::Hyper{11, 12, 13, 14, 15, 16, 17, 0.25f, true, false, true, false});
    round_trip(static_cast<spec::Mamba2*>(nullptr),
               spec::Mamba2::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 19, 0.25f, 0.5f, 8.f, true, false});
    round_trip(static_cast<spec::Rwkv7*>(nullptr),
               spec::Rwkv7::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0.25f, 0.5f, false, 0});
    round_trip(static_cast<spec::Rwkv6*>(nullptr), spec::Rwkv6::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 0.25f, 0.5f, false, 0});
    round_trip(static_cast<spec::GatedDeltaNet*>(nullptr),
               spec::GatedDeltaNet::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 19, 0.25f, true, false});
    round_trip(static_cast<spec::GatedDeltaNet*>(nullptr),
               spec::GatedDeltaNet::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 19, 0.25f, false, true});
    round_trip(static_cast<spec::Gla*>(nullptr), spec::Gla::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 19, 0.25f, 8.f, true, true});
    round_trip(static_cast<spec::Gla*>(nullptr), spec::Gla::Hyper{11, 12, 13, 14, 15, 16, 17, 0, 19, 0.25f, 8.f, false, false});
    round_trip(static_cast<spec::RetNet*>(nullptr), spec::RetNet::Hyper{11, 12, 13, 14, 16, 17, 18, 19, 0.25f, 500.f, true, true});
    round_trip(static_cast<spec::S4d*>(nullptr), spec::S4d::Hyper{11, 12, 14, true, false, 0.25f, 0, false, 0});
    round_trip(static_cast<spec::S4d*>(nullptr), spec::S4d::Hyper{11, 12, 14, false, true, 0.25f, 0, false, 0});
    round_trip(static_cast<spec::Mamba2Hybrid*>(nullptr),
               spec::Mamba2Hybrid::Hyper{.d_model = 11, .n_layer = 12, .vocab = 13, .d_inner = 14, .d_state = 15,
                                         .d_conv = 16, .n_heads = 17, .head_dim = 18, .n_groups = 19,
                                         .norm_groups = 20, .attn_heads = 21, .kv_heads = 22, .attn_head_dim = 23,
                                         .max_context = 24, .rope_dims = 25, .d_ffn = 26, .mlp_act = 1,
                                         .dt_min = 0.125f, .dt_max = 0.5f, .rope_theta = 500.f, .attn_scale = 0.75f,
                                         .norm_eps = 0.25f, .embed_scale = 3.f, .residual_scale = 0.375f,
                                         .logits_scale = 0.625f, .tied_head = true, .conv_bias = false,
                                         .attention_bias = true, .kv_f16 = false, .mlp_gated = true});
    round_trip(static_cast<spec::RecurrentGemma*>(nullptr),
               spec::RecurrentGemma::Hyper{11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 100.f, 0.25f, 30.f, 2.f, true,
                                           false, true, 0});
  }
}
