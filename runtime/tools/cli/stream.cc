// rill stream: a vector (sensor) model over the rows of a .npy, every step's output to a .npy.
#include <algorithm>
#include <cstdio>

#include "common.h"
#include "npy.h"

namespace rill {
namespace cli {

int cmd_stream(int argc, char** argv) {
  Args a{"stream", "MODEL.rill --inputs IN.npy -o OUT.npy [options]",
         "Step a vector model (a sensor model: float vectors in, float vectors out) over the rows of IN.npy,\n"
         "float32 or float64 [T, d_input], from an empty state, and write every step's output as float32\n"
         "[T, d_output] .npy: one row per step. The sensor counterpart of rill logits.",
         "rill stream pendulum.rill --inputs examples/sensor_demo/heldout_inputs.npy -o estimates.npy",
         {model_opt(),
          {"-i", "--inputs", "FILE", "input .npy, [T, d_input] (1-D when d_input is 1)", ""},
          {"-o", "--output", "FILE", "output .npy file", ""},
          {nullptr, "--chunk", "N", "steps per forward pass (prefill_vectors; 1 = step_vector each row)", "1"},
          backend_opt(), device_opt()}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kVectors)) return r;
  const ModelInfo info = lm.model().info();
  long long chunk;
  if (a.get("--inputs").empty() || a.get("--output").empty()) {
    std::fprintf(stderr, "rill stream: --inputs IN.npy and -o OUT.npy are required\nexample: %s\n", a.example);
    return 2;
  }
  if (!int_option(a, "--chunk", 1, 4096, &chunk)) return 2;
  npy::Array arr;
  std::string why;
  if (npy::read(a.get("--inputs"), &arr, &why, /*accept_f64=*/true) && (arr.shape.empty() || arr.shape.size() > 2))
    why = "[T, d_input] or [T] expected, got " + std::to_string(arr.shape.size()) + " dimensions";
  if (!why.empty()) {
    std::fprintf(stderr, "rill stream: %s: %s\n", a.get("--inputs").c_str(), why.c_str());
    return 1;
  }
  const std::vector<float>& in = arr.data;
  const size_t T = arr.rows(), cols = arr.cols();
  if (cols != info.d_input) {
    std::fprintf(stderr, "rill stream: %s has %zu columns, the model takes %u per step\n", a.get("--inputs").c_str(), cols,
                 info.d_input);
    return 1;
  }
  SessionOptions so;
  so.prefill_chunk = static_cast<uint32_t>(chunk);
  OwnedSession os;
  Error e;
  if (OwnedSession::create(lm.model(), so, &os, &e) != Status::kOk) return report(e, "session");
  const size_t dout = info.d_output;
  std::vector<float> out(T * dout);
  std::vector<double> us;
  const double t0 = now_s();
  for (size_t t = 0; t < T; t += static_cast<size_t>(chunk)) {
    const size_t n = std::min(T - t, static_cast<size_t>(chunk));
    const double s0 = now_s();
    const Status s = os.session().prefill_vectors(in.data() + t * cols, n, n * cols, out.data() + t * dout, n * dout);
    us.push_back((now_s() - s0) * 1e6 / static_cast<double>(n));
    if (s != Status::kOk) {
      std::fprintf(stderr, "rill stream: row %zu%s: %s\n", t, n > 1 ? " (or a later row of its chunk)" : "",
                   status_str(s));
      return 1;
    }
  }
  const double secs = now_s() - t0;
  if (!npy::write(a.get("--output"), out.data(), {T, dout}, &why)) {
    std::fprintf(stderr, "rill stream: %s\n", why.c_str());
    return 1;
  }
  std::sort(us.begin(), us.end());
  std::fprintf(stderr, "wrote %s: float32 [%zu, %zu]; %zu steps in %.3f s, %.2f us/step median\n",
               a.get("--output").c_str(), T, dout, T, secs, us.empty() ? 0.0 : us[us.size() / 2]);
  return 0;
}

}  // namespace cli
}  // namespace rill
