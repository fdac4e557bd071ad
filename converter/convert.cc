// rill-convert entry: read the checkpoint folder, pick the architecture, plan, write.
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "arch_common.h"
#include "rill/convert.hpp"

namespace rill {
namespace convert {

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
  ArchInput in{*ck, config_text, opts.input_dir, mdt, opts.allow_unknown_config};
  Plan plan;
  Report report;
  if (rwkv7_matches(in)) {
    plan = rwkv7_plan(in);
    report.arch = "rwkv7";
  } else if (mamba2_matches(in)) {
    plan = mamba2_plan(in);
    report.arch = "mamba2";
  } else if (mamba1_matches(in)) {
    plan = mamba1_plan(in);
    report.arch = "mamba1";
  } else {
    auto cfg = parse_config(config_text);
    const std::string mt = cfg.contains("model_type") ? cfg["model_type"].dump() : "(none)";
    throw ConvertError(cfg_path + ": model_type " + mt + " is not supported (supported: mamba, mamba2, rwkv7)");
  }

  // Tokenizer: --tokenizer, else what the folder declares.
  std::string tk = opts.tokenizer;
  const std::string world_vocab = opts.input_dir + "/rwkv_vocab_v20230424.txt";
  if (tk == "auto") {
    tk = std::ifstream(world_vocab) ? "world" : "none";
    std::ifstream tf(opts.input_dir + "/tokenizer_config.json");
    if (tf) {
      auto j = nlohmann::json::parse(tf, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("rill_tokenizer") && j["rill_tokenizer"] == "bytes")
        tk = "bytes";
    }
  }
  if (tk == "bytes") {
    plan.tokenizer = fb::TokenizerKind::Bytes;
  } else if (tk == "world") {
    uint64_t V = 0;
    for (const PlanTensor& t : plan.tensors)
      if (t.name == "embedding") V = t.shape[0];
    plan.vocab = read_world_vocab(world_vocab, V);
    plan.tokenizer = fb::TokenizerKind::World;
  } else if (tk != "none") {
    throw ConvertError("--tokenizer " + tk + " is not supported (auto, bytes, world, none)");
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
  return report;
}

}  // namespace convert
}  // namespace rill
