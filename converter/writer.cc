// Writes a FileContent as a rill file: size-prefixed FlatBuffer header, then 64-byte-aligned tensor data.
// The file is written to OUTPUT.tmp-PID and renamed into place only when complete.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "content.h"
#include "core/sha256.h"

namespace rill {
namespace convert {

namespace {

constexpr uint64_t kAlignment = 64;
uint64_t align64(uint64_t v) { return (v + kAlignment - 1) / kAlignment * kAlignment; }

uint64_t dtype_bytes(fb::DType dt, uint64_t count) {
  switch (dt) {
    case fb::DType::F32: return count * 4;
    case fb::DType::F16:
    case fb::DType::BF16: return count * 2;
    case fb::DType::I8: return count;
    case fb::DType::I4: return count / 2;
    case fb::DType::I64: return count * 8;
  }
  throw ConvertError("writer: unknown dtype");
}

const char* dtype_label(const FileTensor& t) {
  return t.qbits == 8 ? "q8" : t.qbits == 4 ? "q4" : t.dtype == fb::DType::F16 ? "f16" : "f32";
}

// Encodes values as the tensor's dtype; returns the relative RMS error of what was stored.
double encode(const FileTensor& t, const std::vector<float>& v, bool finite, std::vector<uint8_t>* data,
              std::vector<uint8_t>* scales, std::vector<uint8_t>* tmp) {
  if (t.qbits) return quantize_matrix(v, t.shape[0], t.shape[1], t.qbits, t.group, t.rows16, data, scales, tmp);
  big_resize(data, dtype_bytes(t.dtype, v.size()));
  if (t.dtype == fb::DType::F32) {
    std::memcpy(data->data(), v.data(), data->size());
    return 0.0;
  }
  return encode_f16(v.data(), v.size(), finite, reinterpret_cast<uint16_t*>(data->data()));
}

// A damaged checkpoint (NaN or infinity in a weight) is refused by name: it would quantize to garbage
// and run as NaN logits. An all-ones exponent carries into the top bit below (an integer OR that
// vectorises: a pass over a 4 B-parameter model costs well under a second).
void check_finite(const std::vector<float>& v, const std::string& name, const std::string& source) {
  uint32_t bad = 0;
  for (float x : v) {
    uint32_t b;
    std::memcpy(&b, &x, 4);
    bad |= (b & 0x7f800000u) + 0x00800000u;
  }
  if (!(bad & 0x80000000u)) return;
  size_t i = 0;
  while (std::isfinite(v[i])) ++i;
  throw ConvertError("tensor " + (source.empty() ? name : source) + " holds " + (std::isnan(v[i]) ? "NaN" : "infinity") +
                     " at element " + std::to_string(i) + ": the checkpoint is damaged (--allow-non-finite keeps it)");
}

class TmpFile {
 public:
  explicit TmpFile(const std::string& final_path) : final_(final_path) {
    path_ = final_path + ".tmp-" + std::to_string(getpid());
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw ConvertError("cannot create " + path_ + ": " + std::strerror(errno));
  }
  ~TmpFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  void write_at(uint64_t off, const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, b, n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        throw ConvertError("write to " + path_ + " failed: " + std::strerror(errno));
      }
      b += w, off += static_cast<uint64_t>(w), n -= static_cast<size_t>(w);
    }
  }
  void commit(uint64_t size) {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0 || ::fsync(fd_) != 0)
      throw ConvertError("cannot finish " + path_ + ": " + std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    if (::rename(path_.c_str(), final_.c_str()) != 0)
      throw ConvertError("cannot rename " + path_ + " to " + final_ + ": " + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string final_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

std::string sha256_file(const SrcFile& f) {
  const int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConvertError("cannot read " + f.path);
  Sha256 h;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  uint8_t d[32];
  char hex[65];
  h.finish(d, hex);
  return hex;
}

}  // namespace

// The file's Tokenizer table for the content's tokenizer (kind None: a table saying so).
flatbuffers::Offset<fb::Tokenizer> make_tokenizer(flatbuffers::FlatBufferBuilder& b, const FileContent& content) {
  flatbuffers::Offset<fb::Tokenizer> tok;
  if (content.tokenizer == fb::TokenizerKind::World || content.tokenizer == fb::TokenizerKind::Bpe ||
      content.tokenizer == fb::TokenizerKind::SentencePiece || content.tokenizer == fb::TokenizerKind::BpeByteFallback) {
    const bool world = content.tokenizer == fb::TokenizerKind::World,
               fallback = content.tokenizer == fb::TokenizerKind::BpeByteFallback,
               bpe = content.tokenizer == fb::TokenizerKind::Bpe || fallback;
    std::vector<uint8_t> bytes;
    std::vector<uint32_t> offsets{0}, sorted;
    uint32_t max_len = 0;
    for (uint32_t id = 0; id < content.vocab.size(); ++id) {
      const std::string& t = content.vocab[id];
      bytes.insert(bytes.end(), t.begin(), t.end());
      offsets.push_back(static_cast<uint32_t>(bytes.size()));
      if (!t.empty() && world) sorted.push_back(id);
      max_len = std::max<uint32_t>(max_len, static_cast<uint32_t>(t.size()));
    }
    if (fallback)  // the character-sequence tokens (a padded vocabulary's rows past the file's ids: none)
      for (uint32_t id : content.bpe.chars)
        if (id < content.vocab.size() && !content.vocab[id].empty()) sorted.push_back(id);
    std::sort(sorted.begin(), sorted.end(), [&](uint32_t x, uint32_t y) { return content.vocab[x] < content.vocab[y]; });
    for (size_t k = 1; k < sorted.size(); ++k)
      if (content.vocab[sorted[k]] == content.vocab[sorted[k - 1]])
        throw ConvertError("vocabulary: ids " + std::to_string(sorted[k - 1]) + " and " + std::to_string(sorted[k]) +
                           " have the same bytes");
    std::vector<fb::BpeMerge> merges;
    std::vector<flatbuffers::Offset<fb::AddedToken>> added;
    for (const BpeTokenizer::Merge& m : content.bpe.merges) merges.emplace_back(m.left, m.right, m.merged, m.rank);
    for (const BpeTokenizer::Added& a : content.bpe.added)
      added.push_back(fb::CreateAddedToken(b, a.id, a.special, a.normalized));
    const std::vector<uint8_t> sp(content.sp_model.begin(), content.sp_model.end());
    tok = fb::CreateTokenizerDirect(
        b, content.tokenizer, content.bos_id, content.eos_id, nullptr, &bytes, &offsets,
        world || fallback ? &sorted : nullptr, max_len, bpe ? &merges : nullptr, bpe ? &content.bpe.byte_tokens : nullptr,
        bpe ? &added : nullptr, content.bpe.nfc ? fb::TextNormalizer::Nfc : fb::TextNormalizer::None,
        bpe && !fallback ? content.bpe.pattern.c_str() : nullptr, content.tokenizer_source.c_str(),
        sp.empty() ? nullptr : &sp, static_cast<fb::SpacePrefix>(content.bpe.space_prefix),
        fallback && content.bpe.split_before_space);
  } else {
    tok = fb::CreateTokenizerDirect(b, content.tokenizer, content.bos_id, content.eos_id, nullptr, nullptr, nullptr, nullptr, 0,
                                    nullptr, nullptr, nullptr, fb::TextNormalizer::None, nullptr,
                                    content.tokenizer_source.empty() ? nullptr : content.tokenizer_source.c_str());
  }
  return tok;
}

uint64_t write_model(const FileContent& content_in, const Options& opts, const Checkpoint& ck, const std::string& config_text,
                     Report* report) {
  FileContent content = content_in;
  // Data layout: every tensor 64-byte aligned, relative to data_offset (itself 64-aligned).
  uint64_t cursor = 0;
  for (FileTensor& t : content.tensors) {
    uint64_t count = 1;
    for (uint64_t s : t.shape) count *= s;
    t.size = dtype_bytes(t.dtype, count);
    t.offset = cursor;
    cursor = align64(cursor + t.size);
    if (t.qbits) {  // scales follow the data, aligned like a tensor
      t.scales_offset = cursor;
      t.scales_size = t.qbits == 8 ? t.shape[0] * 4 : t.shape[0] * (t.shape[1] / t.group) * 2;
      cursor = align64(cursor + t.scales_size);
    }
  }
  const uint64_t data_size = cursor;

  // State layout: each tensor 64-byte aligned inside the state block.
  std::vector<std::pair<uint64_t, uint64_t>> state_off;
  uint64_t scur = 0;
  for (const FileState& s : content.state) {
    uint64_t count = 1;
    for (uint64_t v : s.shape) count *= v;
    const uint64_t bytes = count * (s.dtype == fb::DType::F16 ? 2 : s.dtype == fb::DType::I64 ? 8 : 4);
    state_off.emplace_back(scur, bytes);
    scur = align64(scur + bytes);
  }
  const uint64_t state_bytes = scur;

  struct Src {
    std::string name, sha;
    uint64_t size;
  };
  std::vector<Src> srcs;
  {
    if (!config_text.empty()) {  // BlinkDL RWKV-7 checkpoints come without one
      SrcFile cfg{opts.input_dir + "/config.json", "config.json", config_text.size()};
      srcs.push_back(Src{cfg.name, sha256_file(cfg), cfg.size});
    }
    for (const SrcFile& f : ck.files()) srcs.push_back(Src{f.name, sha256_file(f), f.size});
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();

  // Two passes: the header's size does not depend on the data_offset value (scalars are forced),
  // so build once to measure, then again with the final offsets.
  // 1.3 where a quantized tensor is interleaved (older readers refuse its scheme), else 1.2.
  uint16_t minor = 2;
  for (const FileTensor& t : content.tensors)
    if (t.rows16) minor = 3;
  if (content.arch == fb::Arch::RecurrentGemma || content.tokenizer == fb::TokenizerKind::SentencePiece)
    minor = 4;  // RecurrentGemma's params, layer kinds and state dtypes; the SentencePiece tokenizer
  if (content.arch == fb::Arch::Mamba2Hybrid) minor = 5;  // its params and the attention / MLP layer kinds
  if (content.arch == fb::Arch::RWKV6 || content.arch == fb::Arch::GatedDeltaNet || content.arch == fb::Arch::GLA ||
      content.arch == fb::Arch::RetNet)
    minor = 6;
  if (content.tokenizer == fb::TokenizerKind::BpeByteFallback) minor = 7;  // its tokenizer kind and space_prefix
  auto build = [&](flatbuffers::FlatBufferBuilder& b, uint64_t data_offset, uint64_t file_size, const char* sha) {
    b.ForceDefaults(true);
    auto make_tensor = [&](const FileTensor& t) {
      flatbuffers::Offset<fb::Quant> q = 0;
      if (t.qbits == 8)
        q = fb::CreateQuant(b, t.rows16 ? fb::QuantScheme::PerRowRows16 : fb::QuantScheme::PerRow, t.group,
                            fb::DType::F32, t.scales_offset, t.scales_size, 0);
      else if (t.qbits == 4)
        q = fb::CreateQuant(b, t.rows16 ? fb::QuantScheme::GroupedRows16 : fb::QuantScheme::Grouped, t.group,
                            fb::DType::F16, t.scales_offset, t.scales_size, 0);
      return fb::CreateTensorDirect(b, t.name.c_str(), t.dtype, &t.shape, t.offset, t.size, q, t.source.c_str());
    };
    std::vector<flatbuffers::Offset<fb::Tensor>> top;
    for (const FileTensor& t : content.tensors)
      if (t.layer < 0) top.push_back(make_tensor(t));
    std::vector<flatbuffers::Offset<fb::Layer>> layers;
    for (uint32_t i = 0; i < content.n_layer; ++i) {
      std::vector<flatbuffers::Offset<fb::Tensor>> lt;
      for (const FileTensor& t : content.tensors)
        if (t.layer == static_cast<int>(i)) lt.push_back(make_tensor(t));
      layers.push_back(fb::CreateLayerDirect(b, content.layer_kinds.at(i), &lt));
    }
    std::vector<flatbuffers::Offset<fb::StateTensor>> st;
    for (size_t i = 0; i < content.state.size(); ++i)
      st.push_back(fb::CreateStateTensorDirect(b, content.state[i].name.c_str(), content.state[i].layer, content.state[i].dtype,
                                               &content.state[i].shape, state_off[i].first, state_off[i].second));
    auto state = fb::CreateStateLayoutDirect(b, state_bytes, 64, &st);
    flatbuffers::Offset<fb::Tokenizer> tok = make_tokenizer(b, content);
    std::vector<flatbuffers::Offset<fb::SourceFile>> sf;
    for (const Src& s : srcs) sf.push_back(fb::CreateSourceFileDirect(b, s.name.c_str(), s.size, s.sha.c_str()));
    const std::string conv = std::string("rill-convert ") + RILL_VERSION_STRING;
    auto prov = fb::CreateProvenanceDirect(b, conv.c_str(), now, opts.input_dir.c_str(), content.source_format.c_str(),
                                           &sf, opts.command_line.c_str(), config_text.c_str());
    auto params = content.params(b);
    flatbuffers::Offset<fb::Io> io = 0;
    if (content.d_input)
      io = fb::CreateIo(b, fb::IoKind::Vector, content.d_input, fb::IoKind::Vector, content.d_output);
    auto model = fb::CreateModelDirect(b, 1, minor, content.arch, content.params_type, params, &top, &layers, state, tok, prov,
                                       64, data_offset, data_size, file_size, sha, io);
    fb::FinishSizePrefixedModelBuffer(b, model);
  };
  const std::string zeros(64, '0');
  flatbuffers::FlatBufferBuilder probe;
  build(probe, 0, 0, zeros.c_str());
  const uint64_t data_offset = align64(probe.GetSize());
  const uint64_t file_size = data_offset + data_size;

  struct stat st;
  if (::stat(opts.output.c_str(), &st) == 0 && !opts.force)
    throw ConvertError(opts.output + " exists (use --force to overwrite)");

  // Data first (hashed in file order, padding included), then the header that carries the hash.
  TmpFile out(opts.output);
  Sha256 data_hash;
  uint64_t hashed = 0;
  const std::vector<uint8_t> zeros_block(4096, 0);
  auto hash_zeros_to = [&](uint64_t off) {
    while (hashed < off) {
      const uint64_t n = std::min<uint64_t>(off - hashed, zeros_block.size());
      data_hash.update(zeros_block.data(), n);
      hashed += n;
    }
  };
  auto emit = [&](uint64_t off, const std::vector<uint8_t>& bytes) {
    if (off < hashed) throw ConvertError("writer: regions out of order");
    hash_zeros_to(off);
    out.write_at(data_offset + off, bytes.data(), bytes.size());
    data_hash.update(bytes.data(), bytes.size());
    hashed += bytes.size();
  };
  const bool tty = isatty(2) && !opts.quiet;
  uint64_t done = 0, params = 0;
  const size_t n = content.tensors.size();
  std::vector<uint8_t> bytes, scales, tmp;  // kept from tensor to tensor, as read_f32's buffer is
  for (size_t i = 0; i < n; ++i) {
    const FileTensor& t = content.tensors[i];
    const std::string full = full_name(t);
    std::vector<float> v = t.values();
    uint64_t count = 1;
    for (uint64_t d : t.shape) count *= d;
    if (v.size() != count)  // a mapping that computed another shape than the spec's
      throw ConvertError("converter: tensor " + full + " has " + std::to_string(v.size()) + " values, its shape " +
                         "needs " + std::to_string(count));
    if (!opts.allow_non_finite) check_finite(v, full, t.source);
    const double err = encode(t, v, !opts.allow_non_finite, &bytes, &scales, &tmp);
    ck.recycle(std::move(v));
    emit(t.offset, bytes);
    if (t.qbits) emit(t.scales_offset, scales);
    done += t.size + t.scales_size;
    params += count;
    if (tty) {
      std::fprintf(stderr, "\r  [%3zu/%zu] %5.1f%% %-40s", i + 1, n, 100.0 * done / (data_size ? data_size : 1),
                   full.c_str());
      std::fflush(stderr);
    } else if (!opts.quiet && data_size > (256ull << 20) && (i + 1) % (n / 10 + 1) == 0) {
      std::fprintf(stderr, "  %5.1f%% (%zu/%zu tensors)\n", 100.0 * done / data_size, i + 1, n);
    }
    report->tensors.push_back(TensorReport{full, t.source, dtype_label(t), t.shape, t.size + t.scales_size, err, t.note});
  }
  hash_zeros_to(data_size);
  if (tty) std::fprintf(stderr, "\r%-80s\r", "");
  uint8_t digest[32];
  char hex[65];
  data_hash.finish(digest, hex);
  flatbuffers::FlatBufferBuilder fbb;
  build(fbb, data_offset, file_size, hex);
  if (fbb.GetSize() != probe.GetSize()) throw ConvertError("writer: header size changed between passes");
  out.write_at(0, fbb.GetBufferPointer(), fbb.GetSize());
  const std::vector<uint8_t> zero(data_offset - fbb.GetSize(), 0);
  out.write_at(fbb.GetSize(), zero.data(), zero.size());
  out.commit(file_size);
  report->params = params;
  report->weight_bytes = data_size;
  report->state_bytes = state_bytes;
  report->file_bytes = file_size;
  report->source_format = content.source_format;
  return file_size;
}

}  // namespace convert
}  // namespace rill
