// rill-convert entry: read the checkpoint folder, pick the architecture, plan, write.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "arch_common.h"
#include "rill/convert.hpp"

namespace rill {
namespace convert {

namespace {

// An SVG bar chart of each matrix's relative RMS quantization error, grouped by layer (x) and
// coloured by tensor name, beside the CSV: REPORT.svg.
void write_error_plot(const Report& r, const std::string& csv_path) {
  std::vector<const TensorReport*> rows;
  std::vector<std::string> names;
  double ymax = 0;
  for (const TensorReport& t : r.tensors) {
    if (t.shape.size() != 2 || t.rel_rms <= 0) continue;
    rows.push_back(&t);
    const std::string base = t.name.substr(t.name.find_last_of('.') + 1);
    if (std::find(names.begin(), names.end(), base) == names.end()) names.push_back(base);
    ymax = std::max(ymax, t.rel_rms);
  }
  if (rows.empty()) return;
  const std::string path = csv_path.substr(0, csv_path.rfind('.') == std::string::npos ? csv_path.size() : csv_path.rfind('.')) + ".svg";
  std::ofstream f(path);
  const double W = 980, H = 420, left = 70, right = 180, top = 40, bottom = 60;
  const double pw = W - left - right, ph = H - top - bottom, bw = pw / static_cast<double>(rows.size());
  static const char* colors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                 "#9c755f", "#bab0ac"};
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << left << "' y='22' font-size='15'>Relative RMS error of quantized weights, " << r.arch
    << " (left to right: file order, layer by layer)</text>\n";
  for (int k = 0; k <= 4; ++k) {
    const double y = top + ph - ph * k / 4.0;
    char tick[32];
    std::snprintf(tick, sizeof tick, "%.3g", ymax * k / 4.0);
    f << "<line x1='" << left << "' x2='" << left + pw << "' y1='" << y << "' y2='" << y << "' stroke='#ddd'/>"
      << "<text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << tick << "</text>\n";
  }
  int last_layer = -2;
  for (size_t i = 0; i < rows.size(); ++i) {
    const TensorReport& t = *rows[i];
    const std::string base = t.name.substr(t.name.find_last_of('.') + 1);
    const size_t ci = static_cast<size_t>(std::find(names.begin(), names.end(), base) - names.begin()) % 10;
    const double h = ph * t.rel_rms / ymax, x = left + bw * static_cast<double>(i);
    f << "<rect x='" << x + 0.1 * bw << "' y='" << top + ph - h << "' width='" << 0.8 * bw << "' height='" << h
      << "' fill='" << colors[ci] << "'><title>" << t.name << " " << t.dtype << " " << t.rel_rms << "</title></rect>\n";
    const int layer = t.name.rfind("layers.", 0) == 0 ? std::atoi(t.name.c_str() + 7) : -1;
    if (layer != last_layer) {
      f << "<text x='" << x + 2 << "' y='" << top + ph + 16 << "'>" << (layer < 0 ? std::string("top") : "L" + std::to_string(layer))
        << "</text>\n";
      last_layer = layer;
    }
  }
  f << "<text x='" << left + pw / 2 << "' y='" << H - 14 << "' text-anchor='middle'>tensor (grouped by layer)</text>\n";
  for (size_t k = 0; k < names.size(); ++k)
    f << "<rect x='" << left + pw + 20 << "' y='" << top + 18 * k << "' width='12' height='12' fill='" << colors[k % 10]
      << "'/><text x='" << left + pw + 38 << "' y='" << top + 18 * k + 11 << "'>" << names[k] << "</text>\n";
  f << "</svg>\n";
}

}  // namespace

namespace {

std::string base_name(const std::string& p) {
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool is_json(const std::string& p) { return p.size() >= 5 && p.compare(p.size() - 5, 5, ".json") == 0; }

// Reads a tokenizer file into the plan: a .model is a SentencePiece model, a .json a Hugging Face
// tokenizer.json (byte-level BPE), anything else an RWKV world vocabulary.
void read_tokenizer_file(const std::string& path, uint64_t vocab_size, Plan* plan) {
  if (path.size() >= 6 && path.compare(path.size() - 6, 6, ".model") == 0) {
    SpmTokenizer spm = read_sentencepiece(path, vocab_size);
    plan->vocab = std::move(spm.vocab);
    plan->sp_model = std::move(spm.model);
    plan->bos_id = spm.bos_id;
    plan->eos_id = spm.eos_id;
    plan->tokenizer = fb::TokenizerKind::SentencePiece;
  } else if (is_json(path)) {
    plan->bpe = read_hf_tokenizer(path, vocab_size);
    plan->vocab = std::move(plan->bpe.vocab);
    plan->tokenizer = fb::TokenizerKind::Bpe;
  } else {
    plan->vocab = read_world_vocab(path, vocab_size);
    plan->tokenizer = fb::TokenizerKind::World;
  }
  plan->tokenizer_source = base_name(path);
}

}  // namespace

std::string tokenizer_buffer(const std::string& path, uint32_t* vocab_size) {
  Plan plan;
  read_tokenizer_file(path, 1u << 22, &plan);
  size_t n = plan.vocab.size();
  while (n > 0 && plan.vocab[n - 1].empty()) --n;
  plan.vocab.resize(n);
  if (plan.tokenizer == fb::TokenizerKind::Bpe) plan.eos_id = plan.bpe.eos_id;
  flatbuffers::FlatBufferBuilder b;
  auto tok = make_tokenizer(b, plan);
  fb::ModelBuilder mb(b);
  mb.add_format_major(1);
  mb.add_format_minor(plan.tokenizer == fb::TokenizerKind::SentencePiece ? 4 : 1);
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
  } else if (!(ck->find("emb.weight") && ck->find("blocks.0.att.r_k"))) {
    // Only BlinkDL RWKV-7 files describe themselves by their tensors alone.
    throw ConvertError(cfg_path + " not found");
  }
  fb::DType kv = mdt == fb::DType::F32 ? fb::DType::F32 : fb::DType::F16;
  if (opts.kv_dtype == "f32") kv = fb::DType::F32;
  else if (opts.kv_dtype == "f16") kv = fb::DType::F16;
  else if (opts.kv_dtype != "auto") throw ConvertError("--kv-dtype " + opts.kv_dtype + " is not supported (auto, f32, f16)");
  ArchInput in{*ck, config_text, opts.input_dir, mdt, opts.allow_unknown_config, kv};
  Plan plan;
  Report report;
  if (s4d_matches(in)) {
    plan = s4d_plan(in);
    report.arch = "s4d";
  } else if (rwkv7_matches(in)) {
    plan = rwkv7_plan(in);
    report.arch = "rwkv7";
  } else if (mamba2_matches(in)) {
    plan = mamba2_plan(in);
    report.arch = "mamba2";
  } else if (mamba1_matches(in)) {
    plan = mamba1_plan(in);
    report.arch = "mamba1";
  } else if (recurrent_gemma_matches(in)) {
    plan = recurrent_gemma_plan(in);
    report.arch = "recurrent_gemma";
  } else {
    auto cfg = parse_config(config_text);
    const std::string mt = cfg.contains("model_type") ? cfg["model_type"].dump() : "(none)";
    throw ConvertError(cfg_path + ": model_type " + mt + " is not supported (supported: mamba, mamba2, rwkv7, s4d, "
                       "recurrent_gemma)");
  }

  // Tokenizer: --tokenizer (a keyword or a file), else what the folder holds: a world vocabulary,
  // then a tokenizer.json, then a SentencePiece tokenizer.model; tokenizer_config.json
  // {"rill_tokenizer": "bytes"} marks a byte model.
  std::string tk = opts.tokenizer, tk_file;
  auto exists = [](const std::string& p) { return static_cast<bool>(std::ifstream(p)); };
  const std::string world_vocab = opts.input_dir + "/rwkv_vocab_v20230424.txt";
  const std::string hf_json = opts.input_dir + "/tokenizer.json";
  const std::string spm_model = opts.input_dir + "/tokenizer.model";
  if (tk == "auto") {
    tk = exists(world_vocab) ? "world" : exists(hf_json) ? "bpe" : exists(spm_model) ? "spm" : "none";
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
  for (const PlanTensor& t : plan.tensors)
    if (t.name == "embedding") V = t.shape[0];
  if (tk == "bytes") {
    plan.tokenizer = fb::TokenizerKind::Bytes;
    plan.tokenizer_source = "bytes";
  } else if (tk == "world" || tk == "bpe" || tk == "spm") {
    read_tokenizer_file(tk_file, V, &plan);
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
    if (plan.tokenizer != fb::TokenizerKind::Bytes) {
      plan.eos_id = id("eos_token_id", plan.tokenizer == fb::TokenizerKind::Bpe ? plan.bpe.eos_id : plan.eos_id);
      plan.bos_id = id("bos_token_id", plan.bos_id);
    }
  }

  choose_quantization(&plan, opts);
  write_model(plan, opts, *ck, config_text, &report);
  if (!opts.report.empty()) {
    std::ofstream csv(opts.report);
    if (!csv) throw ConvertError("cannot write " + opts.report + " (the model was written)");
    csv << "tensor,source,dtype,shape,bytes,rel_rms_error,note\n";
    for (const TensorReport& t : report.tensors) {
      std::string shape;
      for (uint64_t d : t.shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
      csv << t.name << "," << t.source << "," << t.dtype << "," << shape << "," << t.bytes << "," << t.rel_rms << ","
          << t.note << "\n";
    }
  }
  if (!opts.report.empty()) write_error_plot(report, opts.report);
  return report;
}

}  // namespace convert
}  // namespace rill
