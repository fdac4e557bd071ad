#!/usr/bin/python3
"""Check a conversion against PyTorch, notebook style: convert the demo checkpoint (a byte-level
Mamba-1, examples/demo_model) at each dtype, run held-out text through rill and through the PyTorch
model it was trained as, and see what each dtype costs: per-step logit differences, KL divergence,
top-1 agreement and bits per byte, in a table and a plot (PNG).

    PYTHONPATH=build/python /usr/bin/python3 examples/python/pytorch_check.py [--out pytorch_check.png]

Needs Debian's python3-torch and python3-matplotlib. The cells (# %%) run one by one in an editor
that knows them (VS Code, Jupytext); as a script it runs them all.
"""
# %% Setup: the arguments, the held-out text
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import rill

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_models  # noqa: E402  (the trainers' PyTorch classes with a checkpoint's weights)

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--checkpoint", default=torch_models.DEMO_CHECKPOINT, help="the demo Mamba's checkpoint folder")
ap.add_argument("--dtypes", default="f32,f16,q8,q4", help="dtypes to convert to (default: f32,f16,q8,q4)")
ap.add_argument("--bytes", type=int, default=1024, help="bytes of held-out text to run (default: 1024)")
ap.add_argument("--out", default="pytorch_check.png", help="the PNG to write (default: pytorch_check.png)")
ap.add_argument("--json", default="", help="also write the figures as JSON here")
args = ap.parse_args()

with open(os.path.join(HERE, "..", "demo_model", "heldout.txt"), "rb") as f:
    text = f.read()[:args.bytes]
tokens = np.frombuffer(text, np.uint8).astype(np.int32)  # the demo model reads bytes
print(f"{len(tokens)} held-out bytes, from: {text[:60].decode(errors='replace')!r}...")

# %% The PyTorch reference: the trainer's Mamba with the checkpoint's weights, in float64
t0 = time.time()
ref_model = torch_models.demo_mamba(args.checkpoint)
ref = torch_models.logits(ref_model, tokens)  # [T, 256]
print(f"PyTorch forward over {len(tokens)} tokens: {time.time() - t0:.1f} s")


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def bits_per_byte(logp):  # the next byte's log-probability, averaged, in bits
    return float(-logp[np.arange(len(tokens) - 1), tokens[1:]].mean() / np.log(2))


ref_lp = log_softmax(ref)

# %% rill at each dtype: convert, run every token through a session, compare
rows, per_step = [], {}
with tempfile.TemporaryDirectory() as tmp:
    for dtype in args.dtypes.split(","):
        path = os.path.join(tmp, f"demo.{dtype}.rill")
        report = rill.convert(args.checkpoint, path, dtype=dtype)
        got = rill.Model(path).session().logits(tokens).astype(np.float64)
        lp = log_softmax(got)
        kl = (np.exp(ref_lp) * (ref_lp - lp)).sum(axis=1)  # KL(PyTorch || rill) per step, nats
        diff = np.abs(got - ref).max(axis=1)
        per_step[dtype] = (diff, np.maximum(kl, 0.0))
        rows.append({"dtype": dtype, "file_bytes": report["file_bytes"], "max_abs_logit_diff": float(diff.max()),
                     "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
                     "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
                     "bits_per_byte": bits_per_byte(lp)})

ref_bpb = bits_per_byte(ref_lp)
print(f"\nPyTorch float64: {ref_bpb:.4f} bits per byte, max |logit| {np.abs(ref).max():.1f}")
print(f"{'dtype':6} {'file':>10} {'max|dlogit|':>12} {'KL mean':>10} {'KL max':>10} {'top-1':>7} {'bits/byte':>10}")
for r in rows:
    print(f"{r['dtype']:6} {r['file_bytes']:10d} {r['max_abs_logit_diff']:12.3g} {r['kl_mean']:10.3g} "
          f"{r['kl_max']:10.3g} {r['top1_agreement']:7.2%} {r['bits_per_byte']:10.4f}")
if args.json:
    with open(args.json, "w") as f:
        json.dump({"tokens": len(tokens), "pytorch_bits_per_byte": ref_bpb, "dtypes": rows}, f, indent=2)

# %% The plot: per-step difference and KL for each dtype
import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

colors = {"f32": "#1f77b4", "f16": "#2ca02c", "q8": "#ff7f0e", "q4": "#d62728"}
fig, ax = plt.subplots(2, 1, figsize=(13, 7), sharex=True)
steps = np.arange(len(tokens))
floor = 1e-16  # log axes: an exact zero (float64 rounding) is drawn at the floor
for dtype, (diff, kl) in per_step.items():
    c = colors.get(dtype)
    ax[0].plot(steps, np.maximum(diff, floor), lw=0.7, color=c, label=dtype)
    ax[1].plot(steps, np.maximum(kl, floor), lw=0.7, color=c)
ax[0].set_yscale("log")
ax[0].set_ylabel("max |logit rill − PyTorch|")
ax[0].set_title(f"rill against the PyTorch reference (float64), demo Mamba, {len(tokens)} held-out bytes")
ax[1].set_yscale("log")
ax[1].set_ylabel("KL(PyTorch ‖ rill), nats")
ax[1].set_xlabel("step (token)")
ax[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=len(per_step), fontsize=9, frameon=False)
for a in ax:
    a.grid(True, which="major", alpha=0.3)
table = "\n".join(f"{r['dtype']:>4}: top-1 {r['top1_agreement']:.1%}, {r['bits_per_byte']:.4f} bits/byte"
                  for r in rows)
ax[1].text(1.01, 0.5, f"PyTorch: {ref_bpb:.4f} bits/byte\n{table}", transform=ax[1].transAxes, fontsize=8,
           family="monospace", va="center", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#cccccc"})
fig.tight_layout()
fig.savefig(args.out, dpi=110)
print(f"\nwrote {args.out}")
