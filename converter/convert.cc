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
  else if (opts.dtype == "f16") mdt = fb::DType::F16;
  else throw ConvertError("--dtype " + opts.dtype + " is not supported (f32, f16)");

  const std::string cfg_path = opts.input_dir + "/config.json";
  std::ifstream cf(cfg_path, std::ios::binary);
  if (!cf) throw ConvertError(cfg_path + " not found");
  std::stringstream ss;
  ss << cf.rdbuf();
  const std::string config_text = ss.str();
  parse_config(config_text);  // throws with a message if it is not a JSON object

  auto ck = Checkpoint::open_dir(opts.input_dir);
  ArchInput in{*ck, config_text, opts.input_dir, mdt, opts.allow_unknown_config};
  Plan plan;
  Report report;
  if (mamba2_matches(in)) {
    plan = mamba2_plan(in);
    report.arch = "mamba2";
  } else if (mamba1_matches(in)) {
    plan = mamba1_plan(in);
    report.arch = "mamba1";
  } else {
    auto cfg = parse_config(config_text);
    const std::string mt = cfg.contains("model_type") ? cfg["model_type"].dump() : "(none)";
    throw ConvertError(cfg_path + ": model_type " + mt + " is not supported (supported: mamba, mamba2)");
  }

  // Tokenizer: --tokenizer, else what the folder declares.
  std::string tk = opts.tokenizer;
  if (tk == "auto") {
    tk = "none";
    std::ifstream tf(opts.input_dir + "/tokenizer_config.json");
    if (tf) {
      auto j = nlohmann::json::parse(tf, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("rill_tokenizer") && j["rill_tokenizer"] == "bytes")
        tk = "bytes";
    }
  }
  if (tk == "bytes") plan.tokenizer = fb::TokenizerKind::Bytes;
  else if (tk != "none") throw ConvertError("--tokenizer " + tk + " is not supported (auto, bytes, none)");

  write_model(plan, opts, *ck, config_text, &report);
  return report;
}

}  // namespace convert
}  // namespace rill
