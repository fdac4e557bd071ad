"""The sensor demo's plant: a damped, driven pendulum sampled at 1 kHz, seen through a noisy angle
sensor. The angular velocity is never measured: the model must estimate it (and a clean angle) from
the history of noisy angles and the known drive. examples/control_loop/plant.h is the same plant in
C++ (same constants, same RK4 step).

    theta'' = -(g / l) sin(theta) - b theta' + u(t)

State (theta, omega); input to the model per step: [measured theta, u]; target: [theta, omega].
"""
import numpy as np

G_OVER_L = 9.81 / 0.5    # natural frequency sqrt(19.62) = 4.43 rad/s (0.7 Hz)
DAMPING = 0.3            # 1/s
DT = 1e-3                # 1 kHz
NOISE_THETA = 0.02       # rad, sensor noise (1.1 degrees)


def deriv(th, om, u):
    return om, -G_OVER_L * np.sin(th) - DAMPING * om + u


def rk4(th, om, u):
    """One 1 ms step, u held constant over it (zero-order hold, as a controller applies it)."""
    k1t, k1o = deriv(th, om, u)
    k2t, k2o = deriv(th + 0.5 * DT * k1t, om + 0.5 * DT * k1o, u)
    k3t, k3o = deriv(th + 0.5 * DT * k2t, om + 0.5 * DT * k2o, u)
    k4t, k4o = deriv(th + DT * k3t, om + DT * k3o, u)
    return (th + DT / 6 * (k1t + 2 * k2t + 2 * k3t + k4t),
            om + DT / 6 * (k1o + 2 * k2o + 2 * k3o + k4o))


def drive(rng, B, T):
    """[B, T] drive: three random sinusoids (0.1-1.5 Hz) plus random steps every 0.5-2 s."""
    t = np.arange(T) * DT
    u = np.zeros((B, T))
    for _ in range(3):
        f = rng.uniform(0.1, 1.5, (B, 1))
        a = rng.uniform(0, 3.0, (B, 1))
        ph = rng.uniform(0, 2 * np.pi, (B, 1))
        u += a * np.sin(2 * np.pi * f * t + ph)
    for b in range(B):
        k = 0
        while k < T:
            n = int(rng.uniform(0.5, 2.0) / DT)
            u[b, k:k + n] += rng.uniform(-4, 4)
            k += n
    return u


def simulate(rng, B, T):
    """B trajectories of T steps from random initial states. Returns inputs [B, T, 2] (noisy theta,
    u) and targets [B, T, 2] (theta, omega), float64."""
    u = drive(rng, B, T)
    th = rng.uniform(-1.2, 1.2, B)
    om = rng.uniform(-2.0, 2.0, B)
    thetas = np.zeros((B, T))
    omegas = np.zeros((B, T))
    for k in range(T):
        th, om = rk4(th, om, u[:, k])
        thetas[:, k] = th
        omegas[:, k] = om
    meas = thetas + rng.normal(0, NOISE_THETA, (B, T))
    return np.stack([meas, u], -1), np.stack([thetas, omegas], -1)


def baselines(inputs, window):
    """Estimates without a model: the measured angle as the angle (last value), and the angular
    velocity by finite differences of the measured angle over `window` steps (window 1: one step)."""
    meas = inputs[..., 0]
    om = np.zeros_like(meas)
    om[..., window:] = (meas[..., window:] - meas[..., :-window]) / (window * DT)
    return np.stack([meas, om], -1)


def rmse(a, b):
    return np.sqrt(np.mean((a - b) ** 2, axis=tuple(range(a.ndim - 1))))
