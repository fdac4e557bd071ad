// A 1 kHz control loop around a rill vector model: each millisecond, read the (simulated) sensor,
// step the model, act, and never miss the deadline.
//
//   control_loop MODEL.rill [--seconds S | --steps N] [--cpu K] [--no-rt] [--open-loop]
//
// The plant is the sensor demo's pendulum (plant.h); the model (examples/sensor_demo, S4D) estimates
// its angle and its unmeasured angular velocity from a noisy angle sensor and the commanded torque.
// The controller is a PD law on those estimates that tracks a square-wave angle reference
// (--open-loop: a fixed drive signal instead, the model only observes).
//
// Real-time setup, each step reported, none required: mlockall (no page faults later), SCHED_FIFO
// priority 80, and the thread pinned to one core. Wake-ups use clock_nanosleep(TIMER_ABSTIME) on
// CLOCK_MONOTONIC against absolute deadlines, so lateness never accumulates. Inside the loop nothing
// allocates, locks or does I/O: the histograms are fixed arrays, printed after the loop.
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "plant.h"
#include "rill/extension.hpp"
#include "rill/rill.hpp"

namespace {

constexpr int64_t kPeriodNs = 1000000;  // 1 kHz

int64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Fixed-size histogram of durations: 100 ns buckets up to 5 ms, then one overflow bucket; the exact
// maximum is kept aside.
struct Histogram {
  static constexpr int64_t kBucketNs = 100;
  static constexpr size_t kBuckets = 50000;
  uint64_t counts[kBuckets + 1] = {0};
  uint64_t n = 0;
  int64_t max = 0;
  double sum = 0;
  void add(int64_t ns) {
    if (ns < 0) ns = 0;
    const size_t b = static_cast<size_t>(ns / kBucketNs);
    ++counts[b < kBuckets ? b : kBuckets];
    ++n;
    sum += static_cast<double>(ns);
    if (ns > max) max = ns;
  }
  // The upper edge of the bucket holding quantile q, in microseconds (the max for q = 1).
  double quantile_us(double q) const {
    if (n == 0) return 0;
    const uint64_t want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
    uint64_t seen = 0;
    for (size_t b = 0; b <= kBuckets; ++b) {
      seen += counts[b];
      if (seen >= want && seen > 0) return b == kBuckets ? max / 1e3 : std::min<double>((b + 1) * kBucketNs, max) / 1e3;
    }
    return max / 1e3;
  }
  void print(const char* what) const {
    std::printf("%s: n=%llu mean %.2f us, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, p99.99 %.1f us, max %.1f us\n", what,
                static_cast<unsigned long long>(n), n ? sum / n / 1e3 : 0.0, quantile_us(0.5), quantile_us(0.99),
                quantile_us(0.999), quantile_us(0.9999), max / 1e3);
    // Log-spaced bars: [0,1) [1,2) [2,4) ... microseconds.
    uint64_t bins[16] = {0};
    const char* labels[16] = {"<1", "1-2", "2-4", "4-8", "8-16", "16-32", "32-64", "64-128", "128-256", "256-512",
                              "512-1k", "1k-2k", "2k-4k", ">=4k", "", ""};
    for (size_t b = 0; b <= kBuckets; ++b) {
      if (!counts[b]) continue;
      const double us = b == kBuckets ? 1e9 : b * kBucketNs / 1e3;
      int k = us < 1 ? 0 : 1 + static_cast<int>(std::floor(std::log2(us)));
      if (k > 13) k = 13;
      bins[k] += counts[b];
    }
    for (int k = 0; k < 14; ++k) {
      if (!bins[k]) continue;
      const int bar = static_cast<int>(std::ceil(50.0 * std::log10(1.0 + bins[k]) / std::log10(1.0 + n)));
      std::printf("  %8s us %10llu %s\n", labels[k], static_cast<unsigned long long>(bins[k]), std::string(bar, '#').c_str());
    }
  }
};

uint64_t rss_kib() {
  unsigned long long total = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%llu %llu", &total, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s MODEL.rill [--seconds S | --steps N] [--cpu K] [--no-rt] [--open-loop]\n"
               "  Runs the sensor demo model (float[2] in: measured angle, torque; float[2] out: angle and\n"
               "  angular velocity estimates) against a simulated pendulum at 1 kHz, then prints the step\n"
               "  latency and wake-up jitter histograms and the deadline misses. Default: 10 s on CPU 1.\n"
               "  --no-rt     skip mlockall / SCHED_FIFO / pinning\n"
               "  --open-loop drive the pendulum with a fixed signal; the model only estimates\n",
               argv0);
}

Histogram g_step, g_jitter;  // static storage: not on the stack, not allocated in the loop

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    usage(argv[0]);
    return argc < 2 ? 2 : 0;
  }
  long long steps = 10000;
  int cpu = 1;
  bool rt = true, closed = true;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--seconds" && has) steps = static_cast<long long>(std::atof(argv[++i]) * 1000);
    else if (a == "--steps" && has) steps = std::atoll(argv[++i]);
    else if (a == "--cpu" && has) cpu = std::atoi(argv[++i]);
    else if (a == "--no-rt") rt = false;
    else if (a == "--open-loop") closed = false;
    else {
      usage(argv[0]);
      return 2;
    }
  }
  if (steps < 1) {
    std::fprintf(stderr, "--steps / --seconds must be positive\n");
    return 2;
  }

  // 1. Real-time setup, before the model is mapped (MCL_FUTURE locks it too).
  if (rt) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) std::printf("rt: mlockall ok (no page faults in the loop)\n");
    else std::printf("rt: mlockall failed (%s): pages may fault in the loop; raise RLIMIT_MEMLOCK or run as root\n", std::strerror(errno));
    sched_param sp{};
    sp.sched_priority = 80;
    if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0) std::printf("rt: SCHED_FIFO priority 80\n");
    else std::printf("rt: SCHED_FIFO refused (%s): running SCHED_OTHER; needs CAP_SYS_NICE or an rtprio limit\n", std::strerror(errno));
    const long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu < n_cpu ? cpu : 0, &set);
    if (sched_setaffinity(0, sizeof set, &set) == 0) std::printf("rt: pinned to CPU %d\n", cpu < n_cpu ? cpu : 0);
    else std::printf("rt: pinning refused (%s)\n", std::strerror(errno));
  } else {
    std::printf("rt: off (--no-rt): SCHED_OTHER, not locked, not pinned\n");
  }

  // 2. Model and session: every allocation happens here, before the loop.
  rill::Error err;
  rill::LoadedModel lm;
  if (rill::LoadedModel::open(argv[1], rill::ModelOptions{}, &lm, &err) != rill::Status::kOk) {
    std::fprintf(stderr, "%s: %s\n", argv[1], err.message);
    return 1;
  }
  const rill::ModelInfo info = lm.model().info();
  if (info.d_input != 2 || info.d_output != 2) {
    std::fprintf(stderr, "%s: this loop needs the sensor demo model (float[2] -> float[2]); it takes %u -> %u\n",
                 argv[1], info.d_input, info.d_output);
    return 1;
  }
  rill::OwnedSession os;
  rill::SessionOptions so;
  so.prefill_chunk = 1;  // only steps: the smallest arena
  if (rill::OwnedSession::create(lm.model(), so, &os, &err) != rill::Status::kOk) {
    std::fprintf(stderr, "session: %s\n", err.message);
    return 1;
  }
  rill::Session& s = os.session();
  std::printf("model: %s, d_model %u, %u layers, state %llu bytes, session arena %zu bytes, backend %s\n",
              rill::arch_name(info.arch), info.d_model, info.n_layer, static_cast<unsigned long long>(info.state_bytes),
              os.arena_bytes(), info.backend);

  // 3. The loop.
  pendulum::State x{0.3, 0.0};
  pendulum::Noise noise;
  double se_theta = 0, se_omega = 0, se_track = 0, se_fd = 0;
  double prev_meas = x.theta;
  double u = 0;  // the torque applied during the previous period: the model's second input
  long long misses = 0, errors = 0, overruns = 0;
  const long long window = steps < 20000 ? steps / 2 : 10000;
  double first_ns = 0, last_ns = 0;
  const uint64_t rss_start = rss_kib();
  int64_t next = now_ns() + kPeriodNs;
  for (long long k = 0; k < steps; ++k) {
    timespec ts{static_cast<time_t>(next / 1000000000), static_cast<long>(next % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    const int64_t wake = now_ns();
    g_jitter.add(wake - next);
    // Sense, estimate, act.
    const double t = k * pendulum::kDt;
    const double meas = x.theta + pendulum::kNoiseTheta * noise.gauss();
    const double ref = (static_cast<long long>(t / 2.0) % 2) ? -0.6 : 0.6;
    const float in[2] = {static_cast<float>(meas), static_cast<float>(u)};
    float est[2];
    const int64_t s0 = now_ns();
    if (s.step_vector(in, 2, est, 2) != rill::Status::kOk) ++errors;
    const int64_t s1 = now_ns();
    g_step.add(s1 - s0);
    if (k < window) first_ns += static_cast<double>(s1 - s0);
    if (k >= steps - window) last_ns += static_cast<double>(s1 - s0);
    if (closed) {
      u = 20.0 * (ref - est[0]) - 4.0 * est[1] + pendulum::kGOverL * std::sin(est[0]);  // PD + gravity compensation
      u = u > 15 ? 15 : (u < -15 ? -15 : u);
    } else {
      u = 2.0 * std::sin(2.1 * t) + 1.5 * std::sin(5.3 * t + 1.0) + ((static_cast<long long>(t) % 3) - 1) * 2.0;
    }
    x = pendulum::rk4(x, u);  // the plant moves on during this period
    if (k >= 1000) {  // after the first second (the estimator starts from an empty state)
      se_theta += (est[0] - x.theta) * (est[0] - x.theta);
      se_omega += (est[1] - x.omega) * (est[1] - x.omega);
      se_track += (ref - x.theta) * (ref - x.theta);
      const double fd = (meas - prev_meas) / pendulum::kDt;
      se_fd += (fd - x.omega) * (fd - x.omega);
    }
    prev_meas = meas;
    const int64_t done = now_ns();
    if (done > next + kPeriodNs) ++misses;  // the command came after the next sample was due
    next += kPeriodNs;
    if (done > next + kPeriodNs) {  // a whole period lost: start again from now, counting each lost one
      const int64_t lost = (done - next) / kPeriodNs;
      overruns += lost;
      next += lost * kPeriodNs;
    }
  }
  const uint64_t rss_end = rss_kib();

  // 4. Report (after the loop: printing is I/O).
  const double n_err = static_cast<double>(steps > 1000 ? steps - 1000 : 1);
  std::printf("\n%lld steps at 1 kHz (%.1f s), %s\n", steps, steps / 1000.0,
              closed ? "closed loop: PD on the model's estimates tracks a +-0.6 rad square wave"
                     : "open loop: fixed drive, the model observes");
  g_step.print("step time (Session::step_vector)");
  g_jitter.print("wake-up jitter (actual - scheduled)");
  std::printf("deadline misses: %lld of %lld steps (command later than the next sample), %lld periods skipped, "
              "%lld step errors\n",
              misses, steps, overruns, errors);
  std::printf("estimates after the first second: angle RMSE %.4f rad, angular velocity RMSE %.3f rad/s "
              "(one-step difference of the sensor: %.2f rad/s)\n",
              std::sqrt(se_theta / n_err), std::sqrt(se_omega / n_err), std::sqrt(se_fd / n_err));
  if (closed) std::printf("tracking RMSE %.3f rad (includes the reference's steps)\n", std::sqrt(se_track / n_err));
  std::printf("flat over the run: mean step time first %lld steps %.2f us, last %lld steps %.2f us; resident memory "
              "%llu KiB at start, %llu KiB at end\n",
              window, first_ns / window / 1e3, window, last_ns / window / 1e3, static_cast<unsigned long long>(rss_start),
              static_cast<unsigned long long>(rss_end));
  return errors ? 1 : 0;
}
