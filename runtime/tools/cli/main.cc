// rill: one command-line entry with subcommands, each in its own file (common.h lists them).
// Text goes to stdout, flushed per token; logs, progress and closing figures go to stderr.
// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (partial output kept).
#include <cstdio>
#include <string>

#include "backend/backend.h"
#include "common.h"

using namespace rill;

namespace {

void usage(FILE* f) {
  std::fprintf(f,
               "rill %s: run recurrent sequence models (Mamba, Mamba-2, RWKV-7, S4D, RecurrentGemma) with a\n"
               "fixed-size state\n\n"
               "usage: rill <command> [options]    (rill <command> --help for each)\n\n"
               "commands:\n"
               "  convert   Hugging Face checkpoint folder -> rill model file\n"
               "  inspect   show a model file: architecture, tensors, state and arena bytes, provenance\n"
               "  run       stream generated text from a prompt\n"
               "  logits    write per-step logits of a token sequence as .npy\n"
               "  stream    step a vector (sensor) model over the rows of a .npy, write its outputs as .npy\n"
               "  eval      bits per byte and perplexity on a text file\n"
               "  tokenize  text -> token ids (and back) with a model's or a file's tokenizer\n"
               "  bench     decode/prefill speed, bytes per token, share of memory bandwidth\n\n"
               "exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted\n"
               "example:\n  rill convert examples/demo_model/checkpoint -o demo.rill && rill run demo.rill -p \"ROMEO:\"\n",
               version_string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string c = argv[1];
  if (c == "-h" || c == "--help" || c == "help") {
    usage(stdout);
    return 0;
  }
  if (c == "--version" || c == "version") {
    std::printf("rill %s (backends: %s)\n", version_string(), compiled_backends());
    if (const BackendImpl* cuda = find_backend(Backend::kCuda)) {  // compiled in: is a device there?
      Error e;
      if (cuda->device && cuda->device->probe(0, &e) != Status::kOk) std::printf("cuda: %s\n", e.message);
      else std::printf("cuda: device 0 ready\n");
    }
    return 0;
  }
  if (c == "convert") return cli::cmd_convert(argc - 2, argv + 2);
  if (c == "inspect") return cli::cmd_inspect(argc - 2, argv + 2);
  if (c == "run") return cli::cmd_run(argc - 2, argv + 2);
  if (c == "logits") return cli::cmd_logits(argc - 2, argv + 2);
  if (c == "stream") return cli::cmd_stream(argc - 2, argv + 2);
  if (c == "eval") return cli::cmd_eval(argc - 2, argv + 2);
  if (c == "tokenize") return cli::cmd_tokenize(argc - 2, argv + 2);
  if (c == "bench") return cli::cmd_bench(argc - 2, argv + 2);
  std::fprintf(stderr, "rill: unknown command '%s'\n\n", c.c_str());
  usage(stderr);
  return 2;
}
