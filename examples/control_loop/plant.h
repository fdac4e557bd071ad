// The sensor demo's plant in C++: the damped, driven pendulum of examples/sensor_demo/plant.py (same
// constants, same RK4 step at 1 kHz) with its noisy angle sensor. Allocation-free, header-only.
//   theta'' = -(g / l) sin(theta) - b theta' + u
#pragma once

#include <cmath>
#include <cstdint>

namespace pendulum {

constexpr double kGOverL = 9.81 / 0.5;
constexpr double kDamping = 0.3;      // 1/s
constexpr double kDt = 1e-3;          // s
constexpr double kNoiseTheta = 0.02;  // rad

struct State {
  double theta, omega;
};

inline State deriv(State s, double u) { return {s.omega, -kGOverL * std::sin(s.theta) - kDamping * s.omega + u}; }

// One step of kDt with u held constant (zero-order hold).
inline State rk4(State s, double u) {
  const State k1 = deriv(s, u);
  const State k2 = deriv({s.theta + 0.5 * kDt * k1.theta, s.omega + 0.5 * kDt * k1.omega}, u);
  const State k3 = deriv({s.theta + 0.5 * kDt * k2.theta, s.omega + 0.5 * kDt * k2.omega}, u);
  const State k4 = deriv({s.theta + kDt * k3.theta, s.omega + kDt * k3.omega}, u);
  return {s.theta + kDt / 6 * (k1.theta + 2 * k2.theta + 2 * k3.theta + k4.theta),
          s.omega + kDt / 6 * (k1.omega + 2 * k2.omega + 2 * k3.omega + k4.omega)};
}

// Gaussian noise for the sensor: xorshift64* and Box-Muller.
struct Noise {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  double uniform() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return static_cast<double>((s * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
  }
  double gauss() {
    const double u1 = uniform() + 1e-300, u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace pendulum
