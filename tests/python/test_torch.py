"""rill through the Python module against PyTorch: the two models this repository trains, run by
their trainers' own classes (examples/python/torch_models.py) with the committed checkpoints.

  demo Mamba (examples/demo_model)      logits over held-out text, f32 and quantized
  S4D pendulum (examples/sensor_demo)   outputs over the held-out run; PyTorch's side is the
                                        convolution form over the whole sequence (FFT), rill's the
                                        recurrence, one sample at a time

Also runs both examples in examples/python (their PNGs need python3-matplotlib).

Run by ctest (test "python_torch", release builds) with Debian's /usr/bin/python3 and python3-torch.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rill

SRC = os.environ.get("RILL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(SRC, "examples", "python")
sys.path.insert(0, EXAMPLES)
import torch_models  # noqa: E402

HELD_BYTES = 1024


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def demo():
    """Held-out bytes and the PyTorch model's float64 logits for them."""
    with open(os.path.join(SRC, "examples", "demo_model", "heldout.txt"), "rb") as f:
        toks = np.frombuffer(f.read()[:HELD_BYTES], np.uint8).astype(np.int32)
    return toks, torch_models.logits(torch_models.demo_mamba(), toks)


def rill_logits(tmp_path, toks, dtype):
    path = str(tmp_path / f"demo.{dtype}.rill")
    rill.convert(torch_models.DEMO_CHECKPOINT, path, dtype=dtype)
    return rill.Model(path).session().logits(toks).astype(np.float64)


def bits_per_byte(logp, toks):
    return -logp[np.arange(len(toks) - 1), toks[1:]].mean() / np.log(2)


def test_demo_mamba_f32_equals_pytorch(demo, tmp_path):
    toks, ref = demo
    got = rill_logits(tmp_path, toks, "f32")
    assert got.shape == ref.shape == (len(toks), 256)
    scale = np.abs(ref).max()
    assert scale > 5  # a trained model, not a flat distribution
    assert np.abs(got - ref).max() <= 2e-6 * scale  # seen: 7.2e-6 on logits up to 20.2
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.999
    assert abs(bits_per_byte(log_softmax(got), toks) - bits_per_byte(log_softmax(ref), toks)) < 1e-5


# The quantized files against the float64 PyTorch model: mean KL(PyTorch || rill) in nats, top-1
# agreement, and bits per byte within this much of PyTorch's. Seen on these 1024 bytes: q8 1.2e-4,
# 99.2 %, -0.0007; q4 7.1e-3, 94.6 %, -0.0025.
@pytest.mark.parametrize("dtype,kl_max,top1_min,bpb_tol", [("f16", 1e-6, 0.995, 1e-3), ("q8", 1e-3, 0.98, 0.01),
                                                          ("q4", 2e-2, 0.90, 0.03)])
def test_demo_mamba_quantized_against_pytorch(demo, tmp_path, dtype, kl_max, top1_min, bpb_tol):
    toks, ref = demo
    got = rill_logits(tmp_path, toks, dtype)
    lp, lq = log_softmax(ref), log_softmax(got)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=1)
    assert 0 < kl.mean() <= kl_max  # > 0: the file is quantized, not float
    assert (got.argmax(1) == ref.argmax(1)).mean() >= top1_min
    assert abs(bits_per_byte(lq, toks) - bits_per_byte(lp, toks)) <= bpb_tol


def test_demo_mamba_steps_equal_the_whole_sequence(demo, tmp_path):
    """Session.step token by token, and prefill in chunks, against PyTorch's whole-sequence pass."""
    toks, ref = demo
    path = str(tmp_path / "demo.rill")
    rill.convert(torch_models.DEMO_CHECKPOINT, path, dtype="f32")
    m = rill.Model(path)
    s = m.session()
    out = np.empty(256, np.float32)
    for t in toks[:100]:
        s.step(int(t), out=out)
    assert np.abs(out - ref[99]).max() <= 2e-6 * np.abs(ref).max()
    last = m.session(prefill_chunk=37).prefill(toks[:300])
    assert np.abs(last - ref[299]).max() <= 2e-6 * np.abs(ref).max()


def test_pendulum_s4d_equals_pytorch(tmp_path):
    model = torch_models.pendulum_s4d()
    demo_dir = os.path.join(SRC, "examples", "sensor_demo")
    X = np.load(os.path.join(demo_dir, "heldout_inputs.npy"))  # [20000, 2]
    Y = np.load(os.path.join(demo_dir, "heldout_targets.npy"))
    ref = torch_models.stream(model, X)
    # the trainer wrote its own outputs for these inputs: the class loaded here is the one trained
    assert np.abs(ref - np.load(os.path.join(demo_dir, "heldout_trainer_outputs.npy"))).max() < 1e-6
    path = str(tmp_path / "pendulum.rill")
    rill.convert(torch_models.SENSOR_CHECKPOINT, path, dtype="f32")
    got = rill.Model(path).session().stream(X.astype(np.float32)).astype(np.float64)
    assert got.shape == ref.shape == (len(X), 2)
    scale = np.abs(ref).max(axis=0)  # seen: 1.0 rad, 3.8 rad/s
    err = np.abs(got - ref).max(axis=0)  # seen: 5.7e-6, 4.1e-5
    assert (err <= 5e-5 * np.maximum(scale, 1.0)).all(), err
    rmse = lambda a: np.sqrt(((a[1000:] - Y[1000:]) ** 2).mean(axis=0))  # noqa: E731
    assert np.abs(rmse(got) - rmse(ref)).max() < 1e-5
    assert rmse(got)[0] < 0.05  # the estimator works: angle within 0.05 rad


def test_pytorch_check_example_runs(tmp_path):
    """examples/python/pytorch_check.py end to end: its table and its PNG."""
    png, js = str(tmp_path / "check.png"), str(tmp_path / "check.json")
    env = dict(os.environ)
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, "pytorch_check.py"), "--bytes", "256",
                        "--dtypes", "f32,q8", "--out", png, "--json", js], capture_output=True, text=True,
                       env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(js) as f:
        rows = {d["dtype"]: d for d in json.load(f)["dtypes"]}
    assert rows["f32"]["top1_agreement"] == 1.0 and rows["f32"]["max_abs_logit_diff"] < 1e-4
    assert 0 < rows["q8"]["kl_mean"] < 1e-3 and rows["q8"]["file_bytes"] < rows["f32"]["file_bytes"] / 3


def test_pendulum_example_runs(tmp_path):
    """examples/python/pendulum.py end to end: its RMSE line and its PNG."""
    png = str(tmp_path / "pendulum.png")
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, "pendulum.py"), "--out", png], capture_output=True,
                       text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    import re
    angle, omega = map(float, re.search(r"angle ([0-9.]+) rad, angular velocity ([0-9.]+) rad/s", r.stdout).groups())
    assert angle < 0.05 and omega < 0.2, r.stdout  # seen: 0.0175 rad, 0.075 rad/s
