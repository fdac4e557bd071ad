// S4D checkpoints: the state_dict() of S4Model in state-spaces/s4 example.py, with the S4D layers of
// models/s4/s4d.py, saved as safetensors beside a config.json
//   {"model_type": "s4d", "d_input", "d_output", "d_model", "d_state", "n_layers", "prenorm", "pool"}.
// The converter discretizes each layer's continuous-time kernel by zero-order hold, so the runtime's
// step only multiplies and adds (docs/architectures.md, S4D):
//   A = -exp(log_A_real) + i A_imag,  dt = exp(log_dt),  Ā = exp(dt A),  C̃ = C (exp(dt A) - 1) / A.
#include <cmath>
#include <complex>

#include "arch/s4d.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {"model_type", "d_input", "d_output", "d_model", "d_state", "n_layers",
                                         "prenorm", "pool", "input_mean", "input_std", "layer_norm_eps"};
// Training-time settings with no effect at inference (dropout is off; the dt range only initialises log_dt).
const std::set<std::string> kIgnoredKeys = {"dropout", "lr", "dt_min", "dt_max", "architectures", "torch_dtype"};

using cd = std::complex<double>;

// Ā and C̃ of one mode, in double precision. (exp(z) - 1) / z is computed without cancellation for
// small |z| (z = dt A): its series when |z| < 1e-4, else exp(z) - 1 from expm1 and sin^2 of half the
// angle, which stays accurate when dt |A| is tiny but not tiny enough for the series.
void zoh(double log_dt, double log_a_re, double a_im, double c_re, double c_im, cd* a_bar, cd* c_bar) {
  const double dt = std::exp(log_dt);
  const cd A(-std::exp(log_a_re), a_im);
  const cd z = dt * A;
  *a_bar = std::exp(z.real()) * cd(std::cos(z.imag()), std::sin(z.imag()));
  cd phi;  // (exp(z) - 1) / z
  if (std::abs(z) < 1e-4) {
    phi = 1.0 + z / 2.0 + z * z / 6.0;
  } else {
    const double s = std::sin(z.imag() / 2);
    const cd em1(std::expm1(z.real()) * std::cos(z.imag()) - 2 * s * s, std::exp(z.real()) * std::sin(z.imag()));
    phi = em1 / z;
  }
  *c_bar = cd(c_re, c_im) * dt * phi;  // C (exp(z) - 1) / A = C dt (exp(z) - 1) / z
}

}  // namespace

bool s4d_matches(const ArchInput& in) { return model_type_is(in, "s4d"); }

FileContent s4d_content(const ArchInput& in) {
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);

  const uint64_t H = cfg_uint(cfg, {"d_model"}, 0, true);
  const uint64_t L = cfg_uint(cfg, {"n_layers"}, 0, true);
  const uint64_t N = cfg_uint(cfg, {"d_state"}, 64, false);
  const VectorIo io = read_vector_io(cfg);
  if (!io.d_input) throw ConvertError("config.json: an s4d model needs d_input and d_output");
  const bool prenorm = cfg_bool(cfg, {"prenorm"}, false);
  std::string pool = "none";
  if (cfg.contains("pool")) {
    if (!cfg["pool"].is_string() || (cfg["pool"] != "none" && cfg["pool"] != "mean"))
      throw ConvertError("config.json: pool is " + cfg["pool"].dump() + "; \"none\" or \"mean\" expected");
    pool = cfg["pool"].get<std::string>();
  }
  const double eps = cfg.contains("layer_norm_eps") ? cfg_number(cfg["layer_norm_eps"], "layer_norm_eps") : 1e-5;
  if (H == 0 || L == 0 || N < 2) throw ConvertError("config.json: d_model and n_layers must be positive, d_state >= 2");
  for (const uint64_t v : {H, L, N}) size32(v, "a size in config.json");
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: layer_norm_eps must be in (0, 1)");
  const uint64_t M = N / 2;  // the authors' N // 2 complex modes (conjugate pairs)

  using Spec = spec::S4d;
  Spec::Hyper h{.d_model = size32(H, "d_model"),
                .n_layer = size32(L, "n_layers"),
                .d_state = size32(N, "d_state"),
                .prenorm = prenorm,
                .pool_mean = pool == "mean",
                .norm_eps = static_cast<float>(eps),
                .vocab = 0,
                .tied_head = false,
                .modes = 0};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::S4DBlock), "state-spaces/s4 S4Model", &content);
  const Checkpoint& ck = in.ck;
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, H, 0, false, io), in.matrix_dtype);
  ts.vector_io(io);
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "s4_layers." + std::to_string(i) + ".", k = p + "kernel.";
    const int li = static_cast<int>(i);
    const SrcTensor* log_dt = ts.expect(k + "log_dt", {H});
    const SrcTensor* C = ts.expect(k + "C", {H, M, 2});
    const SrcTensor* lar = ts.expect(k + "log_A_real", {H, M});
    const SrcTensor* aim = ts.expect(k + "A_imag", {H, M});
    // Both Ā and C̃ come from the four kernel tensors: recorded once (A), read again for C̃.
    auto discretize = [&ck, log_dt, C, lar, aim, H, M, k](bool want_a) {
      const std::vector<float> ldt = ck.read_f32(*log_dt), c = ck.read_f32(*C), la = ck.read_f32(*lar),
                               ai = ck.read_f32(*aim);
      std::vector<float> o(M * 2 * H);
      for (uint64_t h = 0; h < H; ++h)
        for (uint64_t m = 0; m < M; ++m) {
          cd a_bar, c_bar;
          zoh(ldt[h], la[h * M + m], ai[h * M + m], c[(h * M + m) * 2], c[(h * M + m) * 2 + 1], &a_bar, &c_bar);
          const cd v = want_a ? a_bar : c_bar;
          if (!std::isfinite(v.real()) || !std::isfinite(v.imag()) || (want_a && std::abs(v) > 1.0))
            throw ConvertError(k + ": channel " + std::to_string(h) + " mode " + std::to_string(m) +
                               (want_a ? " discretizes to an unstable or non-finite decay |exp(dt A)| = "
                                       : " discretizes to a non-finite C: ") +
                               std::to_string(std::abs(v)));
          o[(m * 2) * H + h] = static_cast<float>(v.real());
          o[(m * 2 + 1) * H + h] = static_cast<float>(v.imag());
        }
      return o;
    };
    const bool all = log_dt && C && lar && aim;
    ts.add("A", li, all ? log_dt : nullptr, [discretize] { return discretize(true); });
    ts.add("C", li, all ? C : nullptr, [discretize] { return discretize(false); });
    for (FileTensor& t : content.tensors)  // name every source of the discretized tensors
      if (t.layer == li && (t.name == "A" || t.name == "C")) t.source = k + "{log_dt,log_A_real,A_imag,C} (ZOH)";
    ts.copy(p + "D", "D", li);
    const SrcTensor* w = ts.expect(p + "output_linear.0.weight", {2 * H, H, 1});
    ts.add("out_proj", li, w);  // a 1x1 conv is a matrix: same values, last axis dropped
    ts.copy(p + "output_linear.0.bias", "out_proj_bias", li);
    ts.copy("norms." + std::to_string(i) + ".weight", "norm_weight", li);
    ts.copy("norms." + std::to_string(i) + ".bias", "norm_bias", li);
  }
  ts.finish("d_model=" + std::to_string(H) + " n_layers=" + std::to_string(L) + " d_state=" + std::to_string(N) +
            " d_input=" + std::to_string(io.d_input) + " d_output=" + std::to_string(io.d_output));
  return content;
}

}  // namespace convert
}  // namespace rill
