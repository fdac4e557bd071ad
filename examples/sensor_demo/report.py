#!/usr/bin/python3
"""The sensor demo's check and picture: rill's outputs on the held-out run (from `rill stream`) against
the trainer's own outputs and against the truth, RMSE next to the baselines, and an SVG of true vs
estimated angular velocity (numpy only; the SVG is written by hand).

    report.py ESTIMATES.npy [--svg OUT.svg] [--max-diff 1e-3]

Exit 1 if rill's outputs differ from the trainer's by more than --max-diff (relative to the largest
output), so a script can rely on it.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import plant  # noqa: E402


def polyline(t, y, x0, y0, w, h, t_max, lo, hi, color, width=1.2):
    xs = x0 + w * t / t_max
    ys = y0 + h * (1 - (y - lo) / (hi - lo))
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys))
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{pts}"/>'


def panel(out, title, t, series, x0, y0, w, h, unit):
    lo = min(s[1].min() for s in series)
    hi = max(s[1].max() for s in series)
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    out.append(f'<text x="{x0}" y="{y0 - 8}" font-size="14" font-family="sans-serif">{title}</text>')
    for v in np.linspace(lo, hi, 5):
        yy = y0 + h * (1 - (v - lo) / (hi - lo))
        out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" '
                   f'font-family="sans-serif">{v:.2f}</text>')
    for s in np.arange(0, t[-1] + 1e-9, 1.0):
        xx = x0 + w * s / t[-1]
        out.append(f'<text x="{xx:.1f}" y="{y0 + h + 14}" font-size="11" text-anchor="middle" '
                   f'font-family="sans-serif">{s:.0f}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 30}" font-size="12" text-anchor="middle" '
               f'font-family="sans-serif">time (s); {unit}</text>')
    ly = y0 + 14
    for name, y, color, width in series:
        out.append(polyline(t, y, x0, y0, w, h, t[-1], lo, hi, color, width))
        out.append(f'<line x1="{x0 + w - 190}" y1="{ly - 4}" x2="{x0 + w - 170}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"/><text x="{x0 + w - 165}" y="{ly}" font-size="12" '
                   f'font-family="sans-serif">{name}</text>')
        ly += 16


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("estimates")
    ap.add_argument("--svg", default=None)
    ap.add_argument("--max-diff", type=float, default=1e-3)
    a = ap.parse_args()
    est = np.load(a.estimates).astype(np.float64)
    x = np.load(os.path.join(HERE, "heldout_inputs.npy")).astype(np.float64)
    y = np.load(os.path.join(HERE, "heldout_targets.npy")).astype(np.float64)
    ref = np.load(os.path.join(HERE, "heldout_trainer_outputs.npy")).astype(np.float64)
    with open(os.path.join(HERE, "metrics.json")) as f:
        metrics = json.load(f)
    w = metrics["difference_window_steps"]
    if est.shape != ref.shape:
        print(f"estimates {est.shape}, trainer outputs {ref.shape}: not the same run")
        return 1
    diff = np.abs(est - ref).max() / np.abs(ref).max()
    print(f"rill vs the trainer's own outputs (float64 FFT-convolution forward): max |diff| {np.abs(est - ref).max():.2e} "
          f"= {diff:.2e} of the largest output, over {len(est)} steps")
    skip = 1000  # the first second: every estimator starts from nothing
    r = plant.rmse(est[skip:], y[skip:])
    b1 = plant.rmse(plant.baselines(x, 1)[skip:], y[skip:])
    bw = plant.rmse(plant.baselines(x, w)[skip:], y[skip:])
    print(f"held-out run, {len(est) - skip} steps after the first second:")
    print(f"  angle RMSE:            rill {r[0]:.4f} rad    baseline (last measured value) {b1[0]:.4f} rad")
    print(f"  angular velocity RMSE: rill {r[1]:.3f} rad/s   baseline (1-step difference) {b1[1]:.2f} rad/s, "
          f"({w}-step difference, best window on training data) {bw[1]:.3f} rad/s")
    if a.svg:
        n = min(len(est), 8000)
        t = np.arange(n) * plant.DT
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="960" height="560" viewBox="0 0 960 560">',
               '<rect width="960" height="560" fill="white"/>',
               '<text x="480" y="24" font-size="16" text-anchor="middle" font-family="sans-serif">Sensor demo '
               '(held-out run): S4D estimates from a noisy angle sensor, streamed by rill at 1 kHz</text>']
        base = plant.baselines(x, w)
        panel(out, "angular velocity (never measured)", t,
              [(f"{w}-step difference of the sensor", base[:n, 1], "#bbbbbb", 1.0),
               ("true", y[:n, 1], "#222222", 1.6), ("rill estimate", est[:n, 1], "#d62728", 1.2)],
              70, 60, 860, 200, "rad/s")
        panel(out, "angle", t,
              [("sensor (noisy)", x[:n, 0], "#bbbbbb", 1.0), ("true", y[:n, 0], "#222222", 1.6),
               ("rill estimate", est[:n, 0], "#1f77b4", 1.2)], 70, 320, 860, 180, "rad")
        out.append("</svg>")
        with open(a.svg, "w") as f:
            f.write("\n".join(out) + "\n")
        print(f"wrote {a.svg}")
    if diff > a.max_diff:
        print(f"FAIL: rill's outputs differ from the trainer's by more than {a.max_diff} of the largest output")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
