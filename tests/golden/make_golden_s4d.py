#!/usr/bin/python3
"""Make rill's S4D golden fixtures: random-weight S4Model checkpoints (state-spaces/s4 example.py with
the S4D layers of models/s4/s4d.py, as a state_dict() in safetensors) and the outputs of an
independent float64 reference over the whole sequence.

The reference is the authors' own form: each layer's convolution kernel from the Vandermonde product
K[h, l] = 2 Re sum_n C'[h, n] exp(dt A[h, n] l), with C' = C (exp(dt A) - 1) / A, applied by FFT
convolution (rfft/irfft of length 2L), then D skip, exact GELU, the 1x1 conv to 2H, GLU, residual and
LayerNorm as S4Model.forward does. It never steps the recurrence the C++ code runs. With pool
"mean", the output at step t is S4Model.forward on the inputs up to t (mean over time, then decoder),
computed literally on every prefix.

rill extension: config.json may carry input_mean / input_std; the reference then standardizes the
inputs, (x - mean) / std per channel, before the encoder.

    /usr/bin/python3 tests/golden/make_golden_s4d.py

Outputs per case: config.json, model.safetensors, inputs.npy [T, d_input], outputs.npy [T, d_output],
state_ssm.npy [L, M, 2, H] (the final recurrent state, as rill lays it out: real parts, then
imaginary parts of each mode; computed from the kernel sums, not by stepping).
"""
import json
import math
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from st_io import write_safetensors, write_npy  # noqa: E402


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def s4d_kernel(W, p, L):
    """S4DKernel.forward(L): K [H, L]."""
    dt = np.exp(W[p + "kernel.log_dt"])  # [H]
    C = W[p + "kernel.C"][..., 0] + 1j * W[p + "kernel.C"][..., 1]  # [H, M]
    A = -np.exp(W[p + "kernel.log_A_real"]) + 1j * W[p + "kernel.A_imag"]  # [H, M]
    dtA = A * dt[:, None]
    K = dtA[:, :, None] * np.arange(L)  # [H, M, L]
    C = C * (np.exp(dtA) - 1.0) / A
    return 2 * np.einsum("hn,hnl->hl", C, np.exp(K)).real, C, np.exp(dtA)


def s4d_layer(W, p, u):
    """S4D.forward on u [H, L] (transposed=True): y [H, L]; also the final state [M, 2, H] in rill's layout."""
    H, L = u.shape
    k, Cp, Abar = s4d_kernel(W, p, L)
    k_f = np.fft.rfft(k, n=2 * L)
    u_f = np.fft.rfft(u, n=2 * L)
    y = np.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
    y = y + u * W[p + "D"][:, None]
    y = gelu(y)
    w = W[p + "output_linear.0.weight"][:, :, 0]  # [2H, H]
    y = w @ y + W[p + "output_linear.0.bias"][:, None]  # Conv1d(H, 2H, 1)
    y = y[:H] * (1 / (1 + np.exp(-y[H:])))  # GLU(dim=-2)
    # The state after L steps is sum_l Abar^(L-1-l) u_l per channel and mode (a closed form, no stepping).
    powers = Abar[:, :, None] ** (L - 1 - np.arange(L))  # [H, M, L]
    s = np.einsum("hml,hl->hm", powers, u)  # [H, M]
    state = np.stack([s.real.T, s.imag.T], 1)  # [M, 2, H]
    return y, state


def s4model(W, c, x):
    """S4Model.forward on x [L, d_input] (batch of one). Returns the decoder's output per step [L, d_out]
    for pool none, or the pooled output [d_out] for pool mean; and each layer's final state."""
    if "input_mean" in c:
        x = (x - np.array(c["input_mean"])) / np.array(c["input_std"])
    h = x @ W["encoder.weight"].T + W["encoder.bias"]  # [L, H]
    h = h.T  # [H, L]
    states = []
    for i in range(c["n_layers"]):
        z = h
        if c["prenorm"]:
            z = layernorm(z.T, W[f"norms.{i}.weight"], W[f"norms.{i}.bias"], 1e-5).T
        z, st = s4d_layer(W, f"s4_layers.{i}.", z)
        states.append(st)
        h = z + h
        if not c["prenorm"]:
            h = layernorm(h.T, W[f"norms.{i}.weight"], W[f"norms.{i}.bias"], 1e-5).T
    h = h.T  # [L, H]
    if c.get("pool", "none") == "mean":
        h = h.mean(0)
    return h @ W["decoder.weight"].T + W["decoder.bias"], states


def random_weights(rng, c):
    H, N, din, dout = c["d_model"], c["d_state"], c["d_input"], c["d_output"]
    M = N // 2
    W = {
        "encoder.weight": rng.normal(0, 1 / math.sqrt(din), (H, din)),
        "encoder.bias": rng.normal(0, 0.1, H),
        "decoder.weight": rng.normal(0, 1 / math.sqrt(H), (dout, H)),
        "decoder.bias": rng.normal(0, 0.1, dout),
    }
    for i in range(c["n_layers"]):
        p = f"s4_layers.{i}."
        # S4DKernel's initialisation (dt in [1e-3, 1e-1], S4D-Lin A), perturbed so no two channels agree;
        # a few channels get a large dt so some modes decay fast.
        log_dt = rng.uniform(math.log(1e-3), math.log(1e-1), H)
        log_dt[: max(1, H // 4)] = rng.uniform(math.log(0.3), math.log(1.0), max(1, H // 4))
        W[p + "kernel.log_dt"] = log_dt
        W[p + "kernel.C"] = rng.normal(0, 1 / math.sqrt(2), (H, M, 2))
        W[p + "kernel.log_A_real"] = np.log(0.5 * np.ones((H, M))) + rng.normal(0, 0.3, (H, M))
        W[p + "kernel.A_imag"] = math.pi * np.tile(np.arange(M), (H, 1)) + rng.normal(0, 0.1, (H, M))
        W[p + "D"] = rng.normal(0, 1, H)
        W[p + "output_linear.0.weight"] = rng.normal(0, 1 / math.sqrt(H), (2 * H, H, 1))
        W[p + "output_linear.0.bias"] = rng.normal(0, 0.1, 2 * H)
        W[f"norms.{i}.weight"] = 1 + rng.normal(0, 0.1, H)
        W[f"norms.{i}.bias"] = rng.normal(0, 0.1, H)
    return W


CASES = {
    # name: config, T, seed
    "s4d_prenorm_mean": (dict(d_input=3, d_output=2, d_model=8, d_state=10, n_layers=2, prenorm=True, pool="mean",
                              input_mean=[0.5, -1.0, 2.0], input_std=[2.0, 0.5, 1.5]), 48, 11),
    "s4d_postnorm_none": (dict(d_input=1, d_output=3, d_model=12, d_state=6, n_layers=3, prenorm=False, pool="none"),
                          64, 12),
    "s4d_prenorm_none_wide": (dict(d_input=4, d_output=4, d_model=64, d_state=34, n_layers=2, prenorm=True,
                                   pool="none"), 80, 13),
    "s4d_postnorm_mean": (dict(d_input=2, d_output=1, d_model=16, d_state=64, n_layers=1, prenorm=False, pool="mean"),
                          40, 14),
}


def make(name, c, T, seed):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    cfg = {"model_type": "s4d", **c}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    W = write_safetensors(os.path.join(out, "model.safetensors"), random_weights(rng, c))  # values as stored
    x = rng.normal(0, 1, (T, c["d_input"]))
    x = x.astype(np.float32).astype(np.float64)  # what rill reads
    if c["pool"] == "mean":
        y = np.stack([s4model(W, cfg, x[: t + 1])[0] for t in range(T)])
    else:
        y = s4model(W, cfg, x)[0]
    states = np.stack(s4model(W, cfg, x)[1])  # [L, M, 2, H]
    write_npy(os.path.join(out, "inputs.npy"), x)
    write_npy(os.path.join(out, "outputs.npy"), y)
    write_npy(os.path.join(out, "state_ssm.npy"), states)
    print(f"{name}: T={T} outputs {y.shape} max|y|={np.abs(y).max():.3f}")


def main():
    for name, (c, T, seed) in CASES.items():
        make(name, c, T, seed)


if __name__ == "__main__":
    main()
