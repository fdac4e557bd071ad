// A 1 kHz control loop around a rill vector model: each millisecond, read the (simulated) sensor,
// step the model, act, and never miss the deadline. This is the file to copy: it fails safe.
//
//   control_loop MODEL.rill [--seconds S | --steps N] [--cpu K] [--no-rt] [--open-loop]
//                [--hold N] [--safe-torque U] [--spin-us US] [--sensor-nan START,LEN]
//
// The plant is the sensor demo's pendulum (plant.h); the model (examples/sensor_demo, S4D) estimates
// its angle and its unmeasured angular velocity from a noisy angle sensor and the commanded torque.
// The controller is a PD law on those estimates that tracks a square-wave angle reference
// (--open-loop: a fixed drive signal instead, the model only observes).
//
// Failing safe: a step that fails (a NaN sensor reading gives kNonFinite), or an estimate or command
// that is not finite, never reaches the actuator. The loop holds the last good estimate for --hold
// periods (default 20), then commands --safe-torque (default 0) and resets the model's state until a
// good estimate comes back; both are counted.
//
// Order of setup: the model is opened, verified, prefaulted and locked (ModelOptions::prefault,
// lock_memory), the session placed in a prefaulted, locked arena and warmed up by a few steps (then
// reset), all before the real-time switch: mlockall(MCL_CURRENT | MCL_FUTURE), a prefaulted stack,
// /dev/cpu_dma_latency held at 0, SCHED_FIFO priority 80, and the thread pinned to one core. Only then
// does the clock start. Each is reported, none required. Wake-ups use clock_nanosleep(TIMER_ABSTIME)
// on CLOCK_MONOTONIC against absolute deadlines, so lateness never accumulates; --spin-us US sleeps
// until US microseconds before the deadline and spins the rest. Inside the loop nothing allocates,
// locks or does I/O: the histograms are static arrays (locked by mlockall), printed after the loop.
// SIGINT and SIGTERM stop the loop at the next period and print the report. The page faults and
// involuntary context switches of the loop (getrusage) are checked: in real-time mode any is a
// failure (exit status 3).
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
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
  void touch() {
    for (uint64_t& c : counts) *static_cast<volatile uint64_t*>(&c) = 0;
  }
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
               "                [--hold N] [--safe-torque U] [--spin-us US] [--sensor-nan START,LEN]\n"
               "  Runs the sensor demo model (float[2] in: measured angle, torque; float[2] out: angle and\n"
               "  angular velocity estimates) against a simulated pendulum at 1 kHz, then prints the step\n"
               "  latency and wake-up jitter histograms, the deadline misses and the fail-safe counts.\n"
               "  Default: 10 s on CPU 1. Ctrl-C stops at the next period and prints the report.\n"
               "  --no-rt          skip mlockall / SCHED_FIFO / pinning / cpu_dma_latency\n"
               "  --open-loop      drive the pendulum with a fixed signal; the model only estimates\n"
               "  --hold N         periods to hold the last good estimate after a failed step (default 20)\n"
               "  --safe-torque U  the command after that, until good estimates return (default 0)\n"
               "  --spin-us US     sleep until US us before each deadline, then spin (default 0: sleep)\n"
               "  --sensor-nan S,L the sensor reads NaN for L periods from period S (to see the fail-safe)\n",
               argv0);
}

Histogram g_step, g_jitter;  // static storage: locked by mlockall, not allocated in the loop

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// Touches `bytes` of stack below the caller, so the loop's calls never grow it into new pages.
__attribute__((noinline)) void prefault_stack(size_t bytes) {
  volatile unsigned char* p = static_cast<unsigned char*>(alloca(bytes));
  for (size_t i = 0; i < bytes; i += 4096) p[i] = 0;
}

// Sleeps until `deadline` (CLOCK_MONOTONIC ns): to spin_ns before it, then spins.
void wait_until(int64_t deadline, int64_t spin_ns) {
  const int64_t wake = deadline - spin_ns;
  timespec ts{static_cast<time_t>(wake / 1000000000), static_cast<long>(wake % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop) {
  }
  if (spin_ns > 0)
    while (now_ns() < deadline) {
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    usage(argv[0]);
    return argc < 2 ? 2 : 0;
  }
  long long steps = 10000, hold = 20, nan_start = -1, nan_len = 0;
  int cpu = 1;
  bool rt = true, closed = true;
  double safe_torque = 0.0;
  int64_t spin_ns = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--seconds" && has) steps = static_cast<long long>(std::atof(argv[++i]) * 1000);
    else if (a == "--steps" && has) steps = std::atoll(argv[++i]);
    else if (a == "--cpu" && has) cpu = std::atoi(argv[++i]);
    else if (a == "--no-rt") rt = false;
    else if (a == "--open-loop") closed = false;
    else if (a == "--hold" && has) hold = std::atoll(argv[++i]);
    else if (a == "--safe-torque" && has) safe_torque = std::atof(argv[++i]);
    else if (a == "--spin-us" && has) spin_ns = static_cast<int64_t>(std::atof(argv[++i]) * 1000);
    else if (a == "--sensor-nan" && has && std::sscanf(argv[++i], "%lld,%lld", &nan_start, &nan_len) == 2) {}
    else {
      usage(argv[0]);
      return 2;
    }
  }
  if (steps < 1 || hold < 0 || spin_ns < 0 || spin_ns >= kPeriodNs || !std::isfinite(safe_torque)) {
    std::fprintf(stderr, "--steps / --seconds must be positive, --hold >= 0, --spin-us in [0, 1000), "
                         "--safe-torque finite\n");
    return 2;
  }

  // 1. Model and session, before anything real-time: every allocation, the file's verification, and
  // its pages read in and locked (a model that does not fit the lock limit is reported, then used
  // unlocked, prefaulted only).
  rill::Error err;
  rill::LoadedModel lm;
  rill::ModelOptions mo;
  mo.prefault = mo.lock_memory = true;
  if (rill::LoadedModel::open(argv[1], mo, &lm, &err) != rill::Status::kOk) {
    if (err.status != rill::Status::kOutOfMemory) {
      std::fprintf(stderr, "%s: %s\n", argv[1], err.message);
      return 1;
    }
    std::printf("memory: %s; the model stays unlocked (prefaulted)\n", err.message);
    mo.lock_memory = false;
    if (rill::LoadedModel::open(argv[1], mo, &lm, &err) != rill::Status::kOk) {
      std::fprintf(stderr, "%s: %s\n", argv[1], err.message);
      return 1;
    }
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
  so.prefault = true;
  so.lock_memory = mo.lock_memory;
  if (rill::OwnedSession::create(lm.model(), so, &os, &err) != rill::Status::kOk) {
    std::fprintf(stderr, "session: %s\n", err.message);
    return 1;
  }
  rill::Session& s = os.session();
  std::printf("model: %s, d_model %u, %u layers, state %llu bytes, session arena %zu bytes, backend %s; %s\n",
              rill::arch_name(info.arch), info.d_model, info.n_layer, static_cast<unsigned long long>(info.state_bytes),
              os.arena_bytes(), info.backend, mo.lock_memory ? "prefaulted and locked" : "prefaulted");
  {  // warm-up: the step's code and data paths run once before the clock starts, then the state is cleared
    const float in[2] = {0.f, 0.f};
    float out[2];
    for (int k = 0; k < 8; ++k)
      if (s.step_vector(in, 2, out, 2) != rill::Status::kOk) {
        std::fprintf(stderr, "warm-up step failed\n");
        return 1;
      }
    if (s.reset() != rill::Status::kOk) return 1;
  }

  // 2. Real-time setup.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int dma_fd = -1;
  if (rt) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) std::printf("rt: mlockall ok (current and future pages locked)\n");
    else std::printf("rt: mlockall failed (%s): pages may fault in the loop; raise RLIMIT_MEMLOCK or run as root\n", std::strerror(errno));
    prefault_stack(256 * 1024);
    g_step.touch();  // the histograms' pages, written (and so locked) now
    g_jitter.touch();
    // Hold the CPUs out of deep idle states while the file stays open (the kernel's PM QoS interface).
    dma_fd = open("/dev/cpu_dma_latency", O_WRONLY);
    const int32_t zero = 0;
    if (dma_fd >= 0 && write(dma_fd, &zero, sizeof zero) == sizeof zero) std::printf("rt: /dev/cpu_dma_latency held at 0 us\n");
    else std::printf("rt: /dev/cpu_dma_latency not held (%s): wake-ups may pay for deep idle states\n", std::strerror(errno));
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
    std::printf("rt: off (--no-rt): SCHED_OTHER, not mlockall'd, not pinned\n");
  }
  if (spin_ns) std::printf("wait: sleep until %.0f us before each deadline, then spin\n", spin_ns / 1e3);
  std::fflush(stdout);

  // 3. The loop.
  pendulum::State x{0.3, 0.0};
  pendulum::Noise noise;
  double se_theta = 0, se_omega = 0, se_track = 0, se_fd = 0;
  double prev_meas = x.theta;
  double u = 0;  // the torque applied during the previous period: the model's second input
  long long misses = 0, errors = 0, overruns = 0;
  // Fail-safe: the last good estimate, how long it has been held, and the counts.
  float good[2] = {0.f, 0.f};
  bool have_good = false, in_safe = false;
  long long since_good = 0, held = 0, safe = 0, resets = 0, nonfinite_out = 0, nonfinite_cmd = 0;
  long long k_done = 0, n_acc = 0;
  const long long window = steps < 20000 ? steps / 2 : 10000;
  double first_ns = 0, last_ns = 0;
  const uint64_t rss_start = rss_kib();
  wait_until(now_ns() + 1000, 0);  // the clock's vDSO data pages, read once before the loop
  rusage ru0{};
  getrusage(RUSAGE_THREAD, &ru0);
  int64_t next = now_ns() + kPeriodNs;
  for (long long k = 0; k < steps && !g_stop; ++k) {
    wait_until(next, spin_ns);
    const int64_t wake = now_ns();
    g_jitter.add(wake - next);
    // Sense, estimate, act.
    const double t = k * pendulum::kDt;
    double meas = x.theta + pendulum::kNoiseTheta * noise.gauss();
    if (k >= nan_start && k < nan_start + nan_len) meas = std::nan("");  // a sensor fault (--sensor-nan)
    const double ref = (static_cast<long long>(t / 2.0) % 2) ? -0.6 : 0.6;
    const float in[2] = {static_cast<float>(meas), static_cast<float>(u)};
    float est[2];
    const int64_t s0 = now_ns();
    const rill::Status st = s.step_vector(in, 2, est, 2);  // kNonFinite for a NaN reading: state unchanged
    const int64_t s1 = now_ns();
    bool ok = st == rill::Status::kOk;
    if (!ok) ++errors;
    else if (!std::isfinite(est[0]) || !std::isfinite(est[1])) ok = false, ++nonfinite_out;
    g_step.add(s1 - s0);
    if (k < window) first_ns += static_cast<double>(s1 - s0);
    if (k >= steps - window) last_ns += static_cast<double>(s1 - s0);
    // What the controller may use: this estimate, the last good one (held), or nothing (safe command).
    bool use_safe = false;
    if (ok) {
      good[0] = est[0], good[1] = est[1];
      have_good = true, in_safe = false;
      since_good = 0;
    } else if (have_good && since_good < hold) {
      est[0] = good[0], est[1] = good[1];
      ++since_good, ++held;
    } else {
      use_safe = true;
      ++safe;
      if (!in_safe) {  // entering the safe command: the estimator starts afresh (a NaN may be in its state)
        in_safe = true, have_good = false;
        if (s.reset() == rill::Status::kOk) ++resets;
      }
    }
    if (use_safe) {
      u = safe_torque;
    } else if (closed) {
      u = 20.0 * (ref - est[0]) - 4.0 * est[1] + pendulum::kGOverL * std::sin(est[0]);  // PD + gravity compensation
      u = u > 15 ? 15 : (u < -15 ? -15 : u);
    } else {
      u = 2.0 * std::sin(2.1 * t) + 1.5 * std::sin(5.3 * t + 1.0) + ((static_cast<long long>(t) % 3) - 1) * 2.0;
    }
    if (!std::isfinite(u)) {  // the last line before the actuator: whatever happened above, no NaN passes
      ++nonfinite_cmd;
      u = safe_torque;
    }
    x = pendulum::rk4(x, u);  // the plant moves on during this period
    ++k_done;
    if (k >= 1000 && ok) {  // after the first second (the estimator starts from an empty state)
      ++n_acc;
      se_theta += (est[0] - x.theta) * (est[0] - x.theta);
      se_omega += (est[1] - x.omega) * (est[1] - x.omega);
      se_track += (ref - x.theta) * (ref - x.theta);
      const double fd = (meas - prev_meas) / pendulum::kDt;
      if (std::isfinite(fd)) se_fd += (fd - x.omega) * (fd - x.omega);
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
  rusage ru1{};
  getrusage(RUSAGE_THREAD, &ru1);
  const uint64_t rss_end = rss_kib();
  if (dma_fd >= 0) close(dma_fd);
  const long minflt = ru1.ru_minflt - ru0.ru_minflt, majflt = ru1.ru_majflt - ru0.ru_majflt,
             nivcsw = ru1.ru_nivcsw - ru0.ru_nivcsw;

  // 4. Report (after the loop: printing is I/O).
  const double n_err = static_cast<double>(n_acc > 0 ? n_acc : 1);
  std::printf("\n%lld steps at 1 kHz (%.1f s)%s, %s\n", k_done, k_done / 1000.0, g_stop ? " (stopped by a signal)" : "",
              closed ? "closed loop: PD on the model's estimates tracks a +-0.6 rad square wave"
                     : "open loop: fixed drive, the model observes");
  g_step.print("step time (Session::step_vector)");
  g_jitter.print("wake-up jitter (actual - scheduled)");
  std::printf("deadline misses: %lld of %lld steps (command later than the next sample), %lld periods skipped\n",
              misses, k_done, overruns);
  std::printf("fail-safe: %lld failed steps (%lld refused, %lld non-finite estimates); the last good estimate held "
              "%lld periods (at most %lld at a time), the safe command (%.2f) %lld periods, the estimator reset %lld "
              "times; non-finite commands stopped at the actuator: %lld\n",
              errors + nonfinite_out, errors, nonfinite_out, held, hold, safe_torque, safe, resets, nonfinite_cmd);
  if (n_acc > 0)
    std::printf("estimates after the first second (good steps): angle RMSE %.4f rad, angular velocity RMSE %.3f rad/s "
                "(one-step difference of the sensor: %.2f rad/s)\n",
                std::sqrt(se_theta / n_err), std::sqrt(se_omega / n_err), std::sqrt(se_fd / n_err));
  if (closed && n_acc > 0)
    std::printf("tracking RMSE %.3f rad (includes the reference's steps)\n", std::sqrt(se_track / n_err));
  if (k_done >= 2 * window)
    std::printf("flat over the run: mean step time first %lld steps %.2f us, last %lld steps %.2f us; resident memory "
                "%llu KiB at start, %llu KiB at end\n",
                window, first_ns / window / 1e3, window, last_ns / window / 1e3,
                static_cast<unsigned long long>(rss_start), static_cast<unsigned long long>(rss_end));
  const bool clean = minflt == 0 && majflt == 0 && nivcsw == 0;
  std::printf("loop thread (getrusage): %ld minor and %ld major page faults, %ld involuntary context switches%s\n",
              minflt, majflt, nivcsw,
              clean ? "" : (rt ? ": FAILED (real-time mode expects none)" : " (--no-rt: not checked)"));
  const bool plant_finite = std::isfinite(x.theta) && std::isfinite(x.omega);  // a NaN command would have made it NaN
  std::printf("summary: steps=%lld misses=%lld overruns=%lld refused=%lld nonfinite_estimates=%lld held=%lld safe=%lld "
              "resets=%lld nonfinite_commands=%lld plant_finite=%d minflt=%ld majflt=%ld nivcsw=%ld\n",
              k_done, misses, overruns, errors, nonfinite_out, held, safe, resets, nonfinite_cmd, plant_finite ? 1 : 0,
              minflt, majflt, nivcsw);
  return rt && !clean ? 3 : 0;
}
