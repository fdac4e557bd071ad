// rill-convert entry: read the checkpoint folder, pick the architecture, content, write.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "arch_common.h"
#include "report.h"
#include "rill/convert.hpp"

namespace rill {
namespace convert {

namespace {

std::string base_name(const std::string& p) {
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool is_json(const std::string& p) { return p.size() >= 5 && p.compare(p.size() - 5, 5, ".json") == 0; }

// Reads a tokenizer file into the content: a .model is a SentencePiece model, a .json a Hugging Face
// tokenizer.json (byte-level BPE), anything else an RWKV world vocabulary.
// A tokenizer file read alone (rill tokenize --tokenizer) has no model to bound its ids: at most 4 Mi.
constexpr uint64_t kMaxTokenizerIds = 1u << 22;

// Ids must lie below vocab_size; content->vocab ends at the largest id the file holds.
void read_tokenizer_file(const std::string& path, uint64_t vocab_size, FileContent* content) {
  if (path.size() >= 6 && path.compare(path.size() - 6, 6, ".model") == 0) {
    SpmTokenizer spm = read_sentencepiece(path, vocab_size);
    content->vocab = std::move(spm.vocab);
    content->sp_model = std::move(spm.model);
    content->bos_id = spm.bos_id;
    content->eos_id = spm.eos_id;
    content->tokenizer = fb::TokenizerKind::SentencePiece;
  } else if (is_json(path)) {
    content->bpe = read_hf_tokenizer(path, vocab_size);
    content->vocab = std::move(content->bpe.vocab);
    content->tokenizer = content->bpe.byte_fallback ? fb::TokenizerKind::BpeByteFallback : fb::TokenizerKind::Bpe;
    content->bos_id = content->bpe.bos_id;
  } else {
    content->vocab = read_world_vocab(path, vocab_size);
    content->tokenizer = fb::TokenizerKind::World;
  }
  content->tokenizer_source = base_name(path);
}

}  // namespace

std::string tokenizer_buffer(const std::string& path, uint32_t* vocab_size) {
  FileContent content;
  read_tokenizer_file(path, kMaxTokenizerIds, &content);
  size_t n = content.vocab.size();
  while (n > 0 && content.vocab[n - 1].empty()) --n;
  content.vocab.resize(n);
  if (content.tokenizer == fb::TokenizerKind::Bpe || content.tokenizer == fb::TokenizerKind::BpeByteFallback)
    content.eos_id = content.bpe.eos_id;
  flatbuffers::FlatBufferBuilder b;
  auto tok = make_tokenizer(b, content);
  fb::ModelBuilder mb(b);
  mb.add_format_major(1);
  mb.add_format_minor(content.tokenizer == fb::TokenizerKind::BpeByteFallback ? 7
                      : content.tokenizer == fb::TokenizerKind::SentencePiece ? 4
                                                                              : 1);
  mb.add_tokenizer(tok);
  b.Finish(mb.Finish(), "RILL");
  *vocab_size = static_cast<uint32_t>(n);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

Report run(const Options& opts) {
  if (opts.input_dir.empty()) throw ConvertError("no checkpoint folder given");
  if (opts.output.empty()) throw ConvertError("no output file given (-o MODEL.rill)");
  struct stat st;
  if (::stat(opts.input_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw ConvertError(opts.input_dir + " is not a folder");
  if (::stat(opts.output.c_str(), &st) == 0 && !opts.force)
    throw ConvertError(opts.output + " exists (use --force to overwrite)");
  fb::DType mdt;
  if (opts.dtype == "f32") mdt = fb::DType::F32;
  else if (opts.dtype == "f16" || opts.dtype == "q8" || opts.dtype == "q4") mdt = fb::DType::F16;
  else throw ConvertError("--dtype " + opts.dtype + " is not supported (f32, f16, q8, q4)");
  if (opts.dtype == "q4" && opts.group != 32 && opts.group != 64 && opts.group != 128)
    throw ConvertError("--group " + std::to_string(opts.group) + " is not supported (32, 64, 128)");
  if (opts.quant_layout != "rows16" && opts.quant_layout != "rows")
    throw ConvertError("--quant-layout " + opts.quant_layout + " is not supported (rows16, rows)");

  auto ck = Checkpoint::open_dir(opts.input_dir);
  const std::string cfg_path = opts.input_dir + "/config.json";
  std::string config_text;
  std::ifstream cf(cfg_path, std::ios::binary);
  if (cf) {
    std::stringstream ss;
    ss << cf.rdbuf();
    config_text = ss.str();
    parse_config(config_text);  // throws with a message if it is not a JSON object
  } else if (!(ck->find("emb.weight") && (ck->find("blocks.0.att.r_k") || ck->find("blocks.0.att.time_faaaa")))) {
    // Only BlinkDL RWKV-6 / RWKV-7 files describe themselves by their tensors alone.
    throw ConvertError(cfg_path + " not found");
  }
  fb::DType kv = mdt == fb::DType::F32 ? fb::DType::F32 : fb::DType::F16;
  if (opts.kv_dtype == "f32") kv = fb::DType::F32;
  else if (opts.kv_dtype == "f16") kv = fb::DType::F16;
  else if (opts.kv_dtype != "auto") throw ConvertError("--kv-dtype " + opts.kv_dtype + " is not supported (auto, f32, f16)");
  ArchInput in{*ck, config_text, opts.input_dir, mdt, opts.allow_unknown_config, kv, opts.max_context};
  // Each layout rill reads: how it is recognised, its converter, the architecture it becomes.
  struct Layout {
    bool (*matches)(const ArchInput&);
    FileContent (*content)(const ArchInput&);
    const char* arch;
  };
  static const Layout kLayouts[] = {{s4d_matches, s4d_content, "s4d"},
                                    {rwkv7_matches, rwkv7_content, "rwkv7"},
                                    {rwkv6_matches, rwkv6_content, "rwkv6"},
                                    {gated_deltanet_matches, gated_deltanet_content, "gated_deltanet"},
                                    {gla_matches, gla_content, "gla"},
                                    {retnet_matches, retnet_content, "retnet"},
                                    {mamba2_matches, mamba2_content, "mamba2"},
                                    {mamba1_matches, mamba1_content, "mamba1"},
                                    {recurrent_gemma_matches, recurrent_gemma_content, "recurrent_gemma"},
                                    {granite_hybrid_matches, granite_hybrid_content, "mamba2_hybrid"},
                                    {nemotron_h_matches, nemotron_h_content, "mamba2_hybrid"}};
  const Layout* layout = nullptr;
  for (const Layout& l : kLayouts)
    if (!layout && l.matches(in)) layout = &l;
  if (!layout) {
    auto cfg = parse_config(config_text);
    const std::string mt = cfg.contains("model_type") ? cfg["model_type"].dump() : "(none)";
    throw ConvertError(cfg_path + ": model_type " + mt + " is not supported (supported: mamba, mamba2, rwkv6, rwkv7, gated_deltanet, gla, retnet, s4d, "
                       "recurrent_gemma, granitemoehybrid, nemotron_h)");
  }
  FileContent content = layout->content(in);
  Report report;
  report.arch = layout->arch;

  // Tokenizer: --tokenizer (a keyword or a file), else what the folder holds: a world vocabulary,
  // then a tokenizer.json, then a SentencePiece tokenizer.model; tokenizer_config.json
  // {"rill_tokenizer": "bytes"} marks a byte model. A tokenizer.json that is a SentencePiece model
  // rewritten as BPE with byte fallback (Llama's and Mistral's, which fla-hub models ship) gives way to
  // the tokenizer.model beside it: the same tokenizer in its own form, which rill reads.
  std::string tk = opts.tokenizer, tk_file;
  auto exists = [](const std::string& p) { return static_cast<bool>(std::ifstream(p)); };
  const std::string world_vocab = opts.input_dir + "/rwkv_vocab_v20230424.txt";
  const std::string hf_json = opts.input_dir + "/tokenizer.json";
  const std::string spm_model = opts.input_dir + "/tokenizer.model";
  if (tk == "auto") {
    tk = exists(world_vocab) ? "world" : exists(hf_json) ? "bpe" : exists(spm_model) ? "spm" : "none";
    if (tk == "bpe" && exists(spm_model)) {
      std::ifstream jf(hf_json);
      const auto j = nlohmann::json::parse(jf, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("model") && j["model"].is_object() &&
          j["model"].contains("byte_fallback") && j["model"]["byte_fallback"] == true)
        tk = "spm";
    }
    std::ifstream tf(opts.input_dir + "/tokenizer_config.json");
    if (tf) {
      auto j = nlohmann::json::parse(tf, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("rill_tokenizer") && j["rill_tokenizer"] == "bytes")
        tk = "bytes";
    }
    tk_file = tk == "world" ? world_vocab : tk == "spm" ? spm_model : hf_json;
  } else if (tk == "world") {
    tk_file = world_vocab;
  } else if (tk != "bytes" && tk != "none") {  // a file: .json a tokenizer.json, .model SentencePiece, else world
    tk_file = tk;
    if (!exists(tk_file))
      throw ConvertError("--tokenizer " + tk + ": no such file (or use auto, bytes, none)");
    tk = is_json(tk_file) ? "bpe" : tk_file.size() >= 6 && tk_file.compare(tk_file.size() - 6, 6, ".model") == 0 ? "spm"
                                                                                                               : "world";
  }
  uint64_t V = 0;
  for (const FileTensor& t : content.tensors)
    if (t.name == "embedding") V = t.shape[0];
  if (tk == "bytes") {
    content.tokenizer = fb::TokenizerKind::Bytes;
    content.tokenizer_source = "bytes";
  } else if (tk == "world" || tk == "bpe" || tk == "spm") {
    read_tokenizer_file(tk_file, V, &content);
    content.vocab.resize(V);  // rows past the tokenizer's ids (padding) decode to nothing
  }
  // End and start of text: config.json's ids, else the tokenizer's own end-of-text token.
  if (!config_text.empty()) {  // BlinkDL's RWKV-7 layout comes without a config.json
    auto cfg = parse_config(config_text);
    auto id = [&](const char* key, int32_t def) {
      if (cfg.contains(key) && cfg[key].is_number_integer() && cfg[key].get<int64_t>() >= 0 &&
          static_cast<uint64_t>(cfg[key].get<int64_t>()) < V)
        return cfg[key].get<int32_t>();
      return def;
    };
    if (content.tokenizer != fb::TokenizerKind::Bytes) {
      const bool bpe = content.tokenizer == fb::TokenizerKind::Bpe || content.tokenizer == fb::TokenizerKind::BpeByteFallback;
      content.eos_id = id("eos_token_id", bpe ? content.bpe.eos_id : content.eos_id);
      content.bos_id = id("bos_token_id", content.bos_id);
    }
  }

  choose_quantization(&content, opts);
  write_model(content, opts, *ck, config_text, &report);
  if (!opts.report.empty()) write_report(report, opts.report);
  return report;
}

}  // namespace convert
}  // namespace rill
