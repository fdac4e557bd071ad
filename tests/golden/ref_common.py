"""float64 numpy building blocks shared by the golden reference scripts."""
import json
import os
import shutil

import numpy as np


def softplus(x):
    """PyTorch's softplus with threshold 20."""
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def silu(x):
    return x / (1 + np.exp(-x))


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def causal_conv(x, w, b):
    """Depthwise causal conv over the whole sequence with zero history.
    x [T, C], w [C, K] (w[:, K-1] hits the newest sample), b [C] -> [T, C]; and the last K-1 inputs."""
    T, C = x.shape
    K = w.shape[1]
    pad = np.concatenate([np.zeros((K - 1, C)), x], 0)
    out = np.stack([(pad[t:t + K].T * w).sum(-1) for t in range(T)], 0) + b
    return out, pad[-(K - 1):]


def write_fla_case(out, seed, c, config_json, dtype, random_weights, reference, T=64):
    """One flash-linear-attention fixture (Gated DeltaNet, GLA, RetNet) in folder `out`: random weights
    (random_weights(rng, c), by checkpoint name) stored as `dtype`, config.json, T random tokens, and
    reference(stored weights, c, tokens) -> logits, conv state (or None), wkv state as .npy files."""
    from st_io import write_safetensors, write_npy
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), random_weights(rng, c), dtype)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json, f, indent=1)
    tokens = rng.integers(0, c["vocab"], T)
    logits, conv, wkv = reference(stored, c, tokens)
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(int(t)) for t in tokens) + "\n")
    write_npy(os.path.join(out, "logits.npy"), logits)
    if conv is not None:
        write_npy(os.path.join(out, "state_conv.npy"), conv)
    write_npy(os.path.join(out, "state_wkv.npy"), wkv)
    print(f"{os.path.basename(out)}: {c} T={T} max|logit|={np.abs(logits).max():.3f} max|wkv|={np.abs(wkv).max():.3f}")
