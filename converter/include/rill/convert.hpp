// rill-convert: Hugging Face checkpoint -> rill model file. Converting is where time and memory are
// spent, never at run time: every tensor is checked against the config, transformed into the
// runtime's layout (e.g. A = -exp(A_log), conv weights [K, E]) and written aligned for zero copy.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rill {
namespace convert {

struct Options {
  std::string input_dir;
  std::string output;
  std::string dtype = "f32";       // f32 | f16 | q8 | q4: dtype of the large matrices (sensitive ones stay float)
  uint32_t group = 32;             // q4 group size: 32, 64 or 128
  // q8/q4 byte order: "rows16" (16 rows interleaved, what the vector kernels read) or "rows" (row by
  // row, readable by format 1.2 readers)
  std::string quant_layout = "rows16";
  // RecurrentGemma's key/value ring buffers in the state: "auto" (f32 in f32 models, else f16), "f32", "f16"
  std::string kv_dtype = "auto";
  // Mamba-2 hybrids: the tokens a stream's attention keeps by default (a loader may choose another);
  // 0: the config's max_position_embeddings, capped at 4096
  uint32_t max_context = 0;
  std::vector<std::string> keep_float;  // glob patterns of rill tensor names kept in float (f16)
  std::vector<std::string> quantize;    // glob patterns quantized even if sensitive by default
  std::string report;              // CSV file: per-tensor dtype, bytes, relative RMS error
  std::string tokenizer = "auto";  // auto | bytes | none | FILE (tokenizer.json or a world vocabulary)
  bool force = false;              // overwrite an existing output
  bool allow_unknown_config = false;
  bool allow_non_finite = false;  // keep NaN / infinite weights (else refused by name): failsafe tests
  bool quiet = false;
  std::string command_line;        // recorded in provenance
};

struct TensorReport {
  std::string name, source, dtype;
  std::vector<uint64_t> shape;
  uint64_t bytes;      // data + scales
  double rel_rms = 0;  // ||W - dequant(W)|| / ||W||, 0 for f32
  std::string note;    // why a matrix stayed float, if it did
};

struct Report {
  std::string arch, source_format;
  uint64_t params = 0, weight_bytes = 0, state_bytes = 0, file_bytes = 0;
  std::vector<TensorReport> tensors;
};

// Converts; throws ConvertError (safetensors.h) with a message naming the cause. The output is
// written to a temporary file beside it and renamed, so a failure never leaves a partial model and
// never replaces an existing file.
Report run(const Options& opts);

// Reads a tokenizer file (a Hugging Face tokenizer.json, or an RWKV world vocabulary) into a
// FlatBuffer `Model` holding only that tokenizer; *vocab_size = its highest id + 1. For inspecting a
// tokenizer without a model (`rill tokenize --tokenizer FILE`). Throws ConvertError.
std::string tokenizer_buffer(const std::string& path, uint32_t* vocab_size);

// Writes a random-weight checkpoint (Hugging Face layout, bf16) of the given architecture and shape
// into `dir` (created); keys for mamba1: d_model, n_layer, vocab, d_state, d_conv, expand, seed.
std::string write_random_checkpoint(const std::string& arch, const std::map<std::string, uint64_t>& kv,
                                    const std::string& dir);

}  // namespace convert
}  // namespace rill
