// Damaged model files through the command line, as a user would meet them: each round overwrites 8
// random bytes somewhere in the first 4 KiB of one of the given models and runs `rill inspect` and
// `rill logits` on it (`rill stream` over INPUTS.npy for a model whose file name says "vector"). Every
// run must end within a second, by itself, with exit 0, or exit 1 and a message naming the status
// ("rill: FILE: ... (status)"); never a signal, a hang or a usage error.
//   usage: hostile_cli RILL WORK_DIR ROUNDS SEED INPUTS.npy MODEL.rill...
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Run {
  int exit_code = -1;  // -1: killed by a signal or the timer
  bool timed_out = false;
  double ms = 0;
  std::string err;
};

// Runs argv with stdout to /dev/null and stderr to a file; kills it after `limit_ms`.
Run run(const std::vector<std::string>& args, const std::string& err_path, int limit_ms) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  Run r;
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
    std::fprintf(stderr, "cannot run %s\n", argv[0]);
    std::exit(2);
  }
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (w == pid) break;
    if (r.ms > limit_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (!r.timed_out && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.err = read_file(err_path);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: hostile_cli RILL WORK_DIR ROUNDS SEED INPUTS.npy MODEL.rill...\n");
    return 2;
  }
  const std::string rill = argv[1], work = argv[2], inputs = argv[5];
  const long rounds = std::atol(argv[3]);
  std::mt19937_64 rng(std::strtoull(argv[4], nullptr, 10));
  std::vector<std::string> models;
  std::vector<bool> vector_model;
  for (int i = 6; i < argc; ++i) {
    models.push_back(read_file(argv[i]));
    vector_model.push_back(std::string(argv[i]).find("vector") != std::string::npos);
  }
  const std::string path = work + "/damaged.rill", err = work + "/stderr.txt", npy = work + "/out.npy";
  long ok = 0, refused = 0, bad = 0;
  double worst_ms = 0;
  for (long r = 0; r < rounds; ++r) {
    std::string bytes = models[r % models.size()];
    const size_t span = std::min<size_t>(4096, bytes.size()) - 8, at = rng() % span;
    for (size_t k = 0; k < 8; ++k) bytes[at + k] = static_cast<char>(rng());
    std::ofstream(path, std::ios::binary) << bytes;
    const std::vector<std::string> step =
        vector_model[r % models.size()]
            ? std::vector<std::string>{rill, "stream", path, "--inputs", inputs, "-o", npy}
            : std::vector<std::string>{rill, "logits", path, "--tokens", "0,1,2", "-o", npy};
    const std::vector<std::vector<std::string>> cmds = {{rill, "inspect", path}, step};
    for (const auto& cmd : cmds) {
      const Run x = run(cmd, err, 1000);
      worst_ms = std::max(worst_ms, x.ms);
      const bool named = x.err.find("rill: ") != std::string::npos && x.err.find(')') != std::string::npos;
      if (x.exit_code == 0) {
        ++ok;
      } else if (x.exit_code == 1 && named) {
        ++refused;
      } else {
        ++bad;
        std::fprintf(stderr, "round %ld (model %zu, bytes %zu..%zu): %s %s -> %s exit %d after %.0f ms\n%s\n", r,
                     static_cast<size_t>(r % models.size()), at, at + 7, cmd[1].c_str(), path.c_str(),
                     x.timed_out ? "timed out," : "", x.exit_code, x.ms, x.err.c_str());
        const std::string keep = work + "/finding_" + std::to_string(r) + ".rill";
        std::ofstream(keep, std::ios::binary) << bytes;
      }
    }
  }
  std::printf("%ld rounds, %ld runs: %ld ran, %ld refused with a status, %ld bad; slowest run %.0f ms\n", rounds,
              2 * rounds, ok, refused, bad, worst_ms);
  return bad == 0 ? 0 : 1;
}
