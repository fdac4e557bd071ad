#!/usr/bin/python3
"""The sensor demo through Python: convert the S4D pendulum estimator, stream the held-out run
through Session.stream, and plot the estimates against the truth (PNG, matplotlib).

    PYTHONPATH=build/python /usr/bin/python3 examples/python/pendulum.py [--out pendulum.png]

Needs matplotlib (apt-get install python3-matplotlib) for the plot.

The model reads [measured angle, drive] at 1 kHz and estimates [angle, angular velocity]; the
angular velocity is never measured (examples/sensor_demo/plant.py).
"""
import argparse
import os
import tempfile

import numpy as np

import rill

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "sensor_demo")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="pendulum.png", help="the PNG to write (default: pendulum.png)")
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds of the run to plot (default: 6)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pendulum.rill")
        rill.convert(os.path.join(DEMO, "checkpoint"), path, dtype="f32")
        m = rill.Model(path)
        X = np.load(os.path.join(DEMO, "heldout_inputs.npy")).astype(np.float32)
        Y = np.load(os.path.join(DEMO, "heldout_targets.npy"))
        est = m.session().stream(X)  # [T, 2], every step's estimate, from an empty state

    skip = 1000  # the first second: the state fills
    rmse = np.sqrt(((est[skip:] - Y[skip:]) ** 2).mean(axis=0))
    print(f"{len(X)} steps; RMSE after the first second: angle {rmse[0]:.4f} rad, "
          f"angular velocity {rmse[1]:.4f} rad/s")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(X), int(args.seconds * 1000))
    t = np.arange(n) / 1000.0
    fig, ax = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ax[0].plot(t, X[:n, 0], color="#bbbbbb", lw=0.6, label="measured angle (noisy)")
    ax[0].plot(t, Y[:n, 0], color="black", lw=1.2, label="true angle")
    ax[0].plot(t, est[:n, 0], color="#d62728", lw=1.0, label="rill estimate")
    ax[0].set_ylabel("angle (rad)")
    ax[1].plot(t, Y[:n, 1], color="black", lw=1.2, label="true angular velocity")
    ax[1].plot(t, est[:n, 1], color="#1f77b4", lw=1.0, label="rill estimate (never measured)")
    ax[1].set_ylabel("angular velocity (rad/s)")
    ax[1].set_xlabel("time (s), 1 kHz")
    for a in ax:
        a.legend(loc="upper right", fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle(f"S4D pendulum estimator through rill's Python module (RMSE ω {rmse[1]:.3f} rad/s)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
