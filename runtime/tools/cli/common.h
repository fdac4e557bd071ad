// What the rill commands share: opening models, thread pools, token lists, output helpers.
// Text goes to stdout, flushed per token; logs, progress and closing figures go to stderr.
// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (partial output kept).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.h"
#include "rill/extension.hpp"
#include "rill/rill.hpp"

namespace rill {
namespace cli {

// The commands (one file each, or a close family).
int cmd_convert(int argc, char** argv);   // convert.cc
int cmd_inspect(int argc, char** argv);   // convert.cc
int cmd_run(int argc, char** argv);       // run.cc
int cmd_tokenize(int argc, char** argv);  // tokens.cc
int cmd_logits(int argc, char** argv);    // tokens.cc
int cmd_eval(int argc, char** argv);      // tokens.cc
int cmd_stream(int argc, char** argv);    // stream.cc
int cmd_bench(int argc, char** argv);     // bench.cc

// Set by SIGINT once install_sigint() ran: long loops stop at the next step and report (exit 130).
extern std::atomic<bool> g_interrupted;
void install_sigint();

double now_s();
// Prints "rill: what: message (status)" to stderr; returns 1.
int report(const Error& e, const char* what);
std::string human_bytes(uint64_t b);
// Integers joined by `sep`: "1, 2, 3".
template <class Range>
std::string join(const Range& values, const char* sep) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += sep;
    out += std::to_string(v);
  }
  return out;
}
// One JSON object per line; paths are not always valid UTF-8, so bad bytes are replaced, not thrown on.
void print_json_line(const nlohmann::json& j);
bool read_whole_file(const std::string& path, std::string* out);

// Options several commands take.
Opt model_opt();    // -m/--model
Opt backend_opt();  // --backend cpu|cuda
Opt device_opt();   // --device N
Opt threads_opt();  // -t/--threads N, default the physical cores
Opt context_opt();  // --max-context N (Mamba-2 hybrids)

// For a model with a context limit (ModelInfo::max_context): its attention state at that limit, and
// what a Transformer of the same shape (every mixer layer attention with this model's key/value heads)
// would hold at it; empty for other models.
std::string context_note(const LoadedModel& lm);

// The ModelOptions --backend and --device ask for; false (usage error printed) on a bad value.
bool model_options(Args& a, ModelOptions* o);

// What a command steps: token ids, float vectors, or either.
enum class Takes { kAny, kTokens, kVectors };
// Opens the model named by --model or the first argument; 0, or the exit code (2: none given or a bad
// option; 1: it failed to open, or takes the other kind of input, with the command that fits it).
int open_model(Args& a, LoadedModel* lm, Takes takes = Takes::kAny);

// A pool of n threads (null for n <= 1); false, with a message naming `cmd`, if it cannot be created.
bool create_pool(const char* cmd, long long n, ThreadPool** pool);
// The pool --threads asks for; false (usage error printed) on a bad value.
bool make_pool(Args& a, ThreadPool** pool);
// A session of the model on the pool --threads asks for: 0, or the exit code (the message printed).
// Destroy *pool (ThreadPool::destroy) after the session.
int make_session(Args& a, const Model& m, ThreadPool** pool, OwnedSession* os);

// Comma-separated integers, each in [lo, hi]; false on a bad item (an empty string is an empty list).
bool parse_int_list(const std::string& s, long long lo, long long hi, std::vector<long long>* out);
// A non-empty comma-separated list of token ids.
bool parse_tokens(const std::string& s, std::vector<int32_t>* out);
// Tokenizes with the model's tokenizer; false if it has none or cannot.
bool text_to_tokens(const Model& m, const std::string& text, std::vector<int32_t>* out);

}  // namespace cli
}  // namespace rill
