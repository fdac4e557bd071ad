// Loader and verifier: a good file loads; truncated, foreign, newer, misaligned, mis-shaped and
// bit-flipped files get a status and a message, never a crash.
#include <doctest/doctest.h>

#include <random>

#include "format/views.h"
#include "rill_generated.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

// A model file held in a 64-byte-aligned heap buffer, so tests can mutate it.
struct Bytes {
  AlignedBuffer buf;
  size_t size = 0;
  explicit Bytes(const std::string& s) {
    REQUIRE(AlignedBuffer::allocate(s.size() + 64, &buf) == Status::kOk);
    std::memcpy(buf.data(), s.data(), s.size());
    size = s.size();
  }
  unsigned char* p() { return static_cast<unsigned char*>(buf.data()); }
  fb::Model* model() { return fb::GetMutableSizePrefixedModel(p()); }
};

std::string golden_model(TempDir& tmp) {
  const std::string out = tmp.file("m.rill");
  const std::string err = convert_ckpt(golden_dir("mamba1_awkward"), out);
  REQUIRE_MESSAGE(err.empty(), err);
  return read_file(out);
}

Status try_init(const void* data, size_t size, Error* e, bool verify = true) {
  AlignedBuffer mem;
  REQUIRE(AlignedBuffer::allocate(1 << 20, &mem) == Status::kOk);
  Model m;
  ModelOptions o;
  o.verify = verify;
  return Model::init(data, size, o, mem.data(), mem.size(), &m, e);
}

}  // namespace

TEST_SUITE("format") {
  TEST_CASE("a converted model verifies and reports its sizes") {
    TempDir tmp;
    Bytes b(golden_model(tmp));
    Error e;
    size_t need = 0;
    REQUIRE(Model::footprint(b.p(), b.size, &need, &e) == Status::kOk);
    AlignedBuffer mem;
    REQUIRE(AlignedBuffer::allocate(need, &mem) == Status::kOk);
    Model m;
    REQUIRE_MESSAGE(Model::init(b.p(), b.size, ModelOptions{}, mem.data(), need, &m, &e) == Status::kOk, e.message);
    const ModelInfo in = m.info();
    CHECK(in.arch == Arch::kMamba1);
    CHECK(in.vocab_size == 37);
    CHECK(in.d_model == 40);
    // State per layer: conv [K-1=2, E=80] + ssm [80, 8], each 64-byte aligned: 640 + 2560 = 3200 B.
    CHECK(in.state_bytes == 2 * (640 + 2560));

    SUBCASE("model memory one byte short fails and names the size") {
      Model m2;
      CHECK(Model::init(b.p(), b.size, ModelOptions{}, mem.data(), need - 1, &m2, &e) == Status::kArenaTooSmall);
      CHECK(std::string(e.message).find(std::to_string(need)) != std::string::npos);
      CHECK(!m2.ok());
    }
    SUBCASE("every arena size below the footprint fails; the footprint itself works") {
      size_t arena = 0;
      REQUIRE(Session::footprint(m, SessionOptions{}, &arena) == Status::kOk);
      AlignedBuffer ab;
      REQUIRE(AlignedBuffer::allocate(arena, &ab) == Status::kOk);
      Session s;
      for (size_t sz = 0; sz < arena; sz += (sz < 256 ? 1 : 61)) {
        REQUIRE(Session::init(m, SessionOptions{}, ab.data(), sz, &s, &e) == Status::kArenaTooSmall);
        REQUIRE(!s.ok());
      }
      CHECK(std::string(e.message).find(std::to_string(arena)) != std::string::npos);
      CHECK(Session::init(m, SessionOptions{}, ab.data(), arena, &s, &e) == Status::kOk);
      CHECK(Session::init(m, SessionOptions{}, static_cast<char*>(ab.data()) + 4, arena - 4, &s, &e) ==
            Status::kAlignment);
    }
  }

  TEST_CASE("truncated files are refused at every length") {
    TempDir tmp;
    const std::string s = golden_model(tmp);
    Bytes b(s);
    Error e;
    for (size_t len = 0; len < s.size(); len += (len < 512 ? 1 : 397)) {
      const Status st = try_init(b.p(), len, &e);
      REQUIRE_MESSAGE(st != Status::kOk, "length " << len);
      if (len >= 16 && len > s.size() / 2) CHECK_MESSAGE(st == Status::kTruncated, "length " << len << ": " << e.message);
    }
    CHECK(try_init(b.p(), s.size() - 1, &e) == Status::kTruncated);
  }

  TEST_CASE("foreign, newer, misaligned and inconsistent files get their own status") {
    TempDir tmp;
    const std::string s = golden_model(tmp);
    Error e;
    {
      Bytes b(s);
      b.p()[8] = 'X';
      CHECK(try_init(b.p(), b.size, &e) == Status::kBadMagic);
    }
    {
      Bytes b(s);
      REQUIRE(b.model()->mutate_format_major(2));
      CHECK(try_init(b.p(), b.size, &e) == Status::kVersion);
      CHECK(std::string(e.message).find("newer") != std::string::npos);
    }
    {
      AlignedBuffer buf;
      REQUIRE(AlignedBuffer::allocate(s.size() + 64, &buf) == Status::kOk);
      unsigned char* q = static_cast<unsigned char*>(buf.data()) + 8;
      std::memcpy(q, s.data(), s.size());
      CHECK(try_init(q, s.size(), &e) == Status::kAlignment);
    }
    {
      Bytes b(s);
      auto* in_proj = b.model()->mutable_layers()->GetMutableObject(0)->mutable_tensors()->GetMutableObject(1);
      REQUIRE(std::string(in_proj->name()->c_str()) == "in_proj");
      in_proj->mutable_shape()->Mutate(1, 39);
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("layers.0.in_proj") != std::string::npos);
      CHECK(std::string(e.message).find("[160, 40]") != std::string::npos);
    }
    {
      Bytes b(s);
      auto* t = b.model()->mutable_tensors()->GetMutableObject(0);
      REQUIRE(t->mutate_offset(b.model()->data_size() - 64));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("outside the data region") != std::string::npos);
    }
    {
      Bytes b(s);
      auto* p = static_cast<fb::Mamba1Params*>(b.model()->mutable_params());
      REQUIRE(p->mutate_d_state(1u << 30));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("d_state") != std::string::npos);
    }
    {
      Bytes b(s);
      REQUIRE(b.model()->mutate_arch(static_cast<fb::Arch>(99)));  // a later architecture
      CHECK(try_init(b.p(), b.size, &e) == Status::kUnsupported);
      CHECK(std::string(e.message).find("architecture 99") != std::string::npos);
    }
    {
      Bytes b(s);  // an architecture this build knows, but the file's parameters are another's
      REQUIRE(b.model()->mutate_arch(fb::Arch::RWKV7));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("rwkv7 hyper-parameters are missing") != std::string::npos);
    }
    {
      Bytes b(s);
      REQUIRE(b.model()->mutate_file_size(b.size + 1));
      CHECK(try_init(b.p(), b.size, &e) == Status::kTruncated);
    }
    {
      Bytes b(s);
      REQUIRE(b.model()->mutable_state()->mutate_state_bytes(64));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
    }
  }

  TEST_CASE("recurrent_gemma: layer kinds, state element types and ring shapes are checked against the file") {
    TempDir tmp;
    const std::string out = tmp.file("rg.rill");
    const std::string err = convert_ckpt(golden_dir("recurrent_gemma_awkward"), out, "f16");  // f16 ring
    REQUIRE_MESSAGE(err.empty(), err);
    const std::string s = read_file(out);
    Error e;
    {
      Bytes b(s);
      CHECK(b.model()->format_minor() == 4);
      CHECK_MESSAGE(try_init(b.p(), b.size, &e) == Status::kOk, e.message);
    }
    auto state = [](Bytes& b, const char* name) {
      for (uint32_t i = 0; i < b.model()->state()->tensors()->size(); ++i) {
        fb::StateTensor* t = b.model()->mutable_state()->mutable_tensors()->GetMutableObject(i);
        if (std::string(t->name()->c_str()) == name) return t;
      }
      FAIL("no state tensor " << name);
      return static_cast<fb::StateTensor*>(nullptr);
    };
    {
      Bytes b(s);  // layer 2 is attention: made recurrent, its tensors no longer fit
      REQUIRE(b.model()->mutable_layers()->GetMutableObject(2)->mutate_kind(fb::LayerKind::RglruBlock));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
    }
    {
      Bytes b(s);  // a kind of another architecture
      REQUIRE(b.model()->mutable_layers()->GetMutableObject(0)->mutate_kind(fb::LayerKind::Mamba1Mixer));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("Mamba1Mixer), which a recurrent_gemma model does not have") != std::string::npos);
    }
    {
      Bytes b(s);  // the f16 ring claimed as f32: its size no longer matches
      REQUIRE(state(b, "layers.2.k_ring")->mutate_dtype(fb::DType::F32));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("layers.2.k_ring must be f16") != std::string::npos);
    }
    {
      Bytes b(s);
      REQUIRE(state(b, "position")->mutate_dtype(fb::DType::F32));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("position must be i64") != std::string::npos);
    }
    {
      Bytes b(s);  // a window the ring does not have
      auto* p = static_cast<fb::RecurrentGemmaParams*>(b.model()->mutable_params());
      REQUIRE(p->mutate_window(17));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("k_ring") != std::string::npos);
    }
    {
      Bytes b(s);
      auto* p = static_cast<fb::RecurrentGemmaParams*>(b.model()->mutable_params());
      REQUIRE(p->mutate_n_kv_heads(2));  // 3 heads are not a multiple of 2 key/value heads
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      REQUIRE(p->mutate_n_kv_heads(1));
      REQUIRE(p->mutate_rope_dims(21));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
      REQUIRE(p->mutate_rope_dims(10));
      REQUIRE(p->mutate_kv_dtype(fb::DType::I8));
      CHECK(try_init(b.p(), b.size, &e) == Status::kCorrupt);
    }
  }

  TEST_CASE("a footprint is sized only from checked hyper-parameters and the layers the file holds") {
    TempDir tmp;
    const std::string s = golden_model(tmp);
    Error e;
    size_t need = 0;
    {
      Bytes b(s);  // n_layer far beyond the file's 2 layers: would size terabytes of views
      auto* p = static_cast<fb::Mamba1Params*>(b.model()->mutable_params());
      REQUIRE(p->mutate_n_layer(1u << 31));
      CHECK(Model::footprint(b.p(), b.size, &need, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("n_layer") != std::string::npos);
      REQUIRE(p->mutate_n_layer(3));  // in range, but the file holds 2
      CHECK(Model::footprint(b.p(), b.size, &need, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("file has 2 layers") != std::string::npos);
    }
    {
      Bytes b(s);  // every hyper-parameter is checked before the footprint, not only at init
      auto* p = static_cast<fb::Mamba1Params*>(b.model()->mutable_params());
      REQUIRE(p->mutate_d_inner(0xFFFFFFFFu));
      CHECK(Model::footprint(b.p(), b.size, &need, &e) == Status::kCorrupt);
      CHECK(std::string(e.message).find("d_inner") != std::string::npos);
    }
    {
      // Through the allocating helper: a hostile file fails with kCorrupt before model memory is sized.
      Bytes b(s);
      auto* p = static_cast<fb::Mamba1Params*>(b.model()->mutable_params());
      REQUIRE(p->mutate_n_layer(0x7FFFFFFFu));
      const std::string path = tmp.file("hostile.rill");
      write_file(path, std::string(reinterpret_cast<const char*>(b.p()), b.size));
      LoadedModel lm;
      CHECK(LoadedModel::open(path.c_str(), ModelOptions{}, &lm, &e) == Status::kCorrupt);
    }
  }

  TEST_CASE("under random header corruption every accepted footprint stays within 4 KiB per layer held") {
    // Every architecture, float and quantized; 8 random bytes overwritten in the first 4 KiB, as a
    // damaged download or a hostile file would be.
    struct Case {
      const char* ckpt;
      const char* dtype;
    };
    const Case cases[] = {{"mamba1_awkward", "f32"}, {"mamba2_groups", "q8"}, {"rwkv7_fla_world", "q4"}};
    std::mt19937 rng(9);
    size_t accepted = 0, runs = 0;
    for (const Case& c : cases) {
      TempDir tmp;
      const std::string out = tmp.file("m.rill");
      REQUIRE(convert_ckpt(golden_dir(c.ckpt), out, c.dtype).empty());
      const std::string s = read_file(out);
      Bytes b(s);
      for (int i = 0; i < 1500; ++i, ++runs) {
        std::memcpy(b.p(), s.data(), s.size());
        const size_t at = rng() % (std::min<size_t>(4096, s.size()) - 8);
        for (int k = 0; k < 8; ++k) b.p()[at + k] = static_cast<unsigned char>(rng());
        Error e;
        size_t need = 0;
        if (Model::footprint(b.p(), b.size, &need, &e) != Status::kOk) continue;
        ++accepted;
        const fb::Model* m = fb::GetSizePrefixedModel(b.p());
        const size_t layers = m->layers() ? m->layers()->size() : 0;
        REQUIRE_MESSAGE(need <= 4096 * layers + 4096, c.ckpt << " " << c.dtype << ": footprint " << need << " for "
                                                              << layers << " layers");
      }
    }
    MESSAGE("footprints accepted: " << accepted << " / " << runs);
  }

  TEST_CASE("quantized tensors: columns a multiple of 32 and zero point 0, or kCorrupt") {
    // A lone tensor table over a 64-aligned data region, bound as a [rows, cols] matrix.
    AlignedBuffer region;
    REQUIRE(AlignedBuffer::allocate(1 << 16, &region) == Status::kOk);
    const auto* data = static_cast<const unsigned char*>(region.data());
    const FileView f{data, nullptr, 0, 1 << 16, data};
    auto bind = [&](DType dt, uint64_t rows, uint64_t cols, uint32_t group, int32_t zero_point, Error* e,
                    fb::QuantScheme scheme = fb::QuantScheme::None, TensorView* out = nullptr) {
      flatbuffers::FlatBufferBuilder b;
      const bool i8 = dt == DType::kI8;
      const uint64_t bytes = i8 ? rows * cols : rows * cols / 2;
      const uint64_t sbytes = i8 ? rows * 4 : rows * (cols / group) * 2;
      if (scheme == fb::QuantScheme::None) scheme = i8 ? fb::QuantScheme::PerRow : fb::QuantScheme::Grouped;
      const auto q = fb::CreateQuant(b, scheme, group,
                                     i8 ? fb::DType::F32 : fb::DType::F16, 32768, sbytes, zero_point);
      const std::vector<uint64_t> shape = {rows, cols};
      const auto t = fb::CreateTensor(b, b.CreateString("w"), static_cast<fb::DType>(dt), b.CreateVector(shape), 0,
                                      bytes, q);
      b.Finish(t);
      TensorView v;
      return bind_tensor(f, flatbuffers::GetRoot<fb::Tensor>(b.GetBufferPointer()), "w", {rows, cols}, {dt},
                         out ? out : &v, e);
    };
    Error e;
    CHECK(bind(DType::kI8, 4, 64, 64, 0, &e) == Status::kOk);  // the control: a well-formed one binds
    CHECK(bind(DType::kI4, 4, 64, 32, 0, &e) == Status::kOk);
    CHECK(bind(DType::kI8, 4, 40, 40, 0, &e) == Status::kCorrupt);  // the q8 kernels read whole 32-blocks
    CHECK(std::string(e.message).find("multiple of 32") != std::string::npos);
    CHECK(bind(DType::kI8, 3, 33, 33, 0, &e) == Status::kCorrupt);
    CHECK(bind(DType::kI8, 4, 64, 64, 3, &e) == Status::kCorrupt);  // asymmetric: the kernels ignore it
    CHECK(std::string(e.message).find("zero point 3") != std::string::npos);
    CHECK(bind(DType::kI4, 4, 64, 32, -8, &e) == Status::kCorrupt);
    CHECK(bind(DType::kI4, 4, 96, 64, 0, &e) == Status::kCorrupt);  // 96 is not a multiple of the group
    // The 16-row interleaved layouts (format 1.3): the scheme matches the dtype.
    TensorView v;
    CHECK(bind(DType::kI4, 32, 64, 32, 0, &e, fb::QuantScheme::GroupedRows16, &v) == Status::kOk);
    CHECK(v.rows16);
    CHECK(bind(DType::kI4, 32, 64, 32, 0, &e, fb::QuantScheme::Grouped, &v) == Status::kOk);
    CHECK(!v.rows16);
    CHECK(bind(DType::kI4, 24, 64, 32, 0, &e, fb::QuantScheme::GroupedRows16) == Status::kOk);  // a tail of 8 rows
    CHECK(bind(DType::kI4, 32, 64, 32, 0, &e, fb::QuantScheme::PerRow) == Status::kCorrupt);
    CHECK(bind(DType::kI4, 32, 64, 32, 0, &e, fb::QuantScheme::PerRowRows16) == Status::kCorrupt);
    CHECK(bind(DType::kI8, 32, 64, 64, 0, &e, fb::QuantScheme::PerRowRows16, &v) == Status::kOk);
    CHECK(v.rows16);
    CHECK(bind(DType::kI8, 40, 64, 64, 0, &e, fb::QuantScheme::PerRowRows16) == Status::kOk);
    CHECK(bind(DType::kI8, 32, 64, 64, 0, &e, fb::QuantScheme::GroupedRows16) == Status::kCorrupt);
  }

  TEST_CASE("random byte flips anywhere in the header never crash the loader") {
    TempDir tmp;
    const std::string s = golden_model(tmp);
    const fb::Model* m0 = fb::GetSizePrefixedModel(s.data());
    const size_t header = static_cast<size_t>(m0->data_offset());
    std::mt19937 rng(42);
    Bytes b(s);
    size_t accepted = 0;
    for (int i = 0; i < 3000; ++i) {
      std::memcpy(b.p(), s.data(), s.size());
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < flips; ++k) b.p()[rng() % header] ^= static_cast<unsigned char>(1u << (rng() % 8));
      Error e;
      AlignedBuffer mem;
      REQUIRE(AlignedBuffer::allocate(1 << 20, &mem) == Status::kOk);
      Model m;
      if (Model::init(b.p(), b.size, ModelOptions{}, mem.data(), mem.size(), &m, &e) == Status::kOk) {
        ++accepted;  // a flip in a name or provenance string can be harmless: the model must still run
        OwnedSession os;
        REQUIRE(OwnedSession::create(m, SessionOptions{}, &os) == Status::kOk);
        std::vector<float> out(m.info().vocab_size);
        for (int t = 0; t < 4; ++t) REQUIRE(os.session().step(t, out.data(), out.size()) == Status::kOk);
      }
    }
    MESSAGE("header flips accepted as still-valid: " << accepted << " / 3000");
  }
}
