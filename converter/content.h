// The content of a file the converter writes: its tensors (with how to compute each one's values),
// state layout, hyper-parameters and tokenizer. Each architecture (arch_<arch>.cc) builds it from a
// checkpoint and its spec (runtime/src/arch/<arch>.h); writer.cc writes it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arch/spec.h"
#include "rill/convert.hpp"
#include "rill_generated.h"
#include "safetensors.h"

namespace rill {
namespace convert {

struct FileTensor {
  std::string name;    // rill name: "embedding", or "in_proj" inside layer `layer`
  int layer = -1;      // -1: model-level
  fb::DType dtype = fb::DType::F32;
  spec::DClass dclass = spec::DClass::kF32;  // how it may be stored (the spec's)
  std::vector<uint64_t> shape;
  std::string source;  // checkpoint name(s)
  std::function<std::vector<float>()> values;  // f32 values in rill layout, row-major
  uint64_t offset = 0, size = 0;               // filled by the writer
  int qbits = 0;                               // 8 or 4: quantized (dtype I8 / I4)
  uint32_t group = 0;                          // elements per scale
  bool rows16 = false;                         // int4 in the 16-row interleaved layout
  uint64_t scales_offset = 0, scales_size = 0;  // filled by the writer
  std::string note;                            // why a matrix stayed float
};

struct FileState {
  std::string name;
  int layer;  // -1: the whole model's (a stream's position)
  std::vector<uint64_t> shape;
  fb::DType dtype = fb::DType::F32;  // F32, F16 (key/value rings) or I64 (positions)
};

inline constexpr uint32_t kNoToken = 0xFFFFFFFFu;

// A byte-level BPE tokenizer read from a Hugging Face tokenizer.json.
struct BpeTokenizer {
  struct Merge {
    uint32_t left, right, merged, rank;
  };
  struct Added {
    uint32_t id;
    bool special, normalized;
  };
  std::vector<std::string> vocab;  // the bytes of each token id (empty: none)
  std::vector<Merge> merges;       // sorted by (left, right)
  std::vector<uint32_t> byte_tokens;  // 256; kNoToken for bytes valid UTF-8 never holds
  std::vector<Added> added;
  bool nfc = false;
  std::string pattern, source;
  int32_t eos_id = -1;
  // BPE with byte fallback (a SentencePiece model rewritten as a tokenizer.json): vocab holds each
  // token's text (U+2581 as a space, <0xNN> as the byte), byte_tokens the <0xNN> tokens, chars the
  // character-sequence tokens (neither byte nor added), space_prefix a fb::SpacePrefix.
  bool byte_fallback = false;
  uint8_t space_prefix = 0;
  bool split_before_space = false;  // no character-sequence token has a character followed by a space
  std::vector<uint32_t> chars;
  int32_t bos_id = -1;  // the post-processor's leading special token, if any
};

// A SentencePiece model read from a tokenizer.model.
struct SpmTokenizer {
  std::string model;                // the file's bytes (serialized ModelProto), embedded whole
  std::vector<std::string> vocab;   // each id's text for detokenize (vocab_size entries)
  std::vector<std::string> pieces;  // the pieces as stored
  int32_t bos_id = -1, eos_id = -1, unk_id = -1;
};

struct FileContent {
  fb::Arch arch = fb::Arch::Unknown;
  std::string source_format;
  // Hyper-parameters, written by the architecture (one of the union members).
  std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)> params;
  fb::ArchParams params_type = fb::ArchParams::NONE;
  uint32_t n_layer = 0;
  std::vector<fb::LayerKind> layer_kinds;  // one per layer
  std::vector<FileTensor> tensors;
  std::vector<FileState> state;
  fb::TokenizerKind tokenizer = fb::TokenizerKind::None;
  int32_t bos_id = -1, eos_id = -1;
  std::vector<std::string> vocab;  // World: the bytes of each token id (empty: no text)
  BpeTokenizer bpe;                // Bpe: everything but vocab (in `vocab`)
  std::string sp_model;            // SentencePiece: the serialized model
  std::string tokenizer_source;    // the file the tokenizer came from
  // Vector models: floats per step in and out (0: token ids in, logits out); tensors encoder,
  // encoder_bias, decoder, decoder_bias (and input_mean, input_std) are in `tensors`.
  uint32_t d_input = 0, d_output = 0;
};

struct ArchInput {
  const Checkpoint& ck;
  const std::string& config_text;
  const std::string& dir;
  fb::DType matrix_dtype;
  bool allow_unknown_config;
  fb::DType kv_dtype;  // RecurrentGemma's and the hybrids' key/value ring buffers: F32 or F16
  uint32_t max_context;  // the hybrids' default context (0: from the config)
};

// Architectures: inspect the config and tensors and return the file's complete, checked content.
bool mamba1_matches(const ArchInput& in);
FileContent mamba1_content(const ArchInput& in);
bool mamba2_matches(const ArchInput& in);
FileContent mamba2_content(const ArchInput& in);
bool rwkv7_matches(const ArchInput& in);
FileContent rwkv7_content(const ArchInput& in);
bool rwkv6_matches(const ArchInput& in);
FileContent rwkv6_content(const ArchInput& in);
bool gated_deltanet_matches(const ArchInput& in);
FileContent gated_deltanet_content(const ArchInput& in);
bool gla_matches(const ArchInput& in);
FileContent gla_content(const ArchInput& in);
bool retnet_matches(const ArchInput& in);
FileContent retnet_content(const ArchInput& in);
bool s4d_matches(const ArchInput& in);
FileContent s4d_content(const ArchInput& in);
bool recurrent_gemma_matches(const ArchInput& in);
FileContent recurrent_gemma_content(const ArchInput& in);
bool granite_hybrid_matches(const ArchInput& in);  // Granite 4.0-H (granitemoehybrid), dense
FileContent granite_hybrid_content(const ArchInput& in);
bool nemotron_h_matches(const ArchInput& in);
FileContent nemotron_h_content(const ArchInput& in);

// Marks the content's matrices for int8/int4 per the options and each tensor's storage class
// (kSensitive ones stay f16 unless --quantize names them; kF32 and kFloat ones are never quantized).
void choose_quantization(FileContent* content, const Options& opts);
std::string full_name(const FileTensor& t);
// Quantizes a [rows, cols] matrix to int8 (bits 8) or int4 (bits 4, `group`); returns the relative
// RMS error of the dequantized values. `tmp`, where given, is a buffer kept between calls for the
// 16-row interleave (a large model's conversion otherwise faults fresh pages in for every tensor).
double quantize_matrix(const std::vector<float>& w, uint64_t rows, uint64_t cols, int bits, uint32_t group,
                       bool rows16, std::vector<uint8_t>* data, std::vector<uint8_t>* scales,
                       std::vector<uint8_t>* tmp = nullptr);

// Encodes n values as f16 (round to nearest even; kernels::f32_to_f16's bits) into out; returns the
// relative RMS error. `finite`: the values were checked (the vector path is used only then).
double encode_f16(const float* v, size_t n, bool finite, uint16_t* out);

// Appends code point cp (<= U+10FFFF) as UTF-8.
void put_utf8(uint32_t cp, std::string* out);
// The tokenizer readers refuse an id >= vocab_size (the model's embedding rows) and return a vocabulary
// that ends at the largest id the file holds (ids absent from the file stay empty).
// Reads an RWKV world vocabulary file.
std::vector<std::string> read_world_vocab(const std::string& path, uint64_t vocab_size);
// Reads a Hugging Face tokenizer.json (byte-level BPE).
BpeTokenizer read_hf_tokenizer(const std::string& path, uint64_t vocab_size);
// Reads a SentencePiece tokenizer.model.
SpmTokenizer read_sentencepiece(const std::string& path, uint64_t vocab_size);

// The Tokenizer table of the content's tokenizer.
flatbuffers::Offset<fb::Tokenizer> make_tokenizer(flatbuffers::FlatBufferBuilder& b, const FileContent& content);
// Writes the content (temporary file + rename). Returns the file size.
uint64_t write_model(const FileContent& content, const Options& opts, const Checkpoint& ck, const std::string& config_text,
                     Report* report);

}  // namespace convert
}  // namespace rill
