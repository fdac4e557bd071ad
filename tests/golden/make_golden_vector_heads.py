#!/usr/bin/python3
"""Make rill's golden fixtures for Mamba and Mamba-2 with vector heads (sensor models): a linear
encoder in place of the embedding, a linear decoder (with bias) in place of the LM head.

The checkpoint layout (rill's, documented in docs/sensors.md): config.json of the ordinary
model with "d_input" and "d_output" (and optionally "input_mean", "input_std") in place of
"vocab_size"; tensors encoder.weight [d_model, d_input], encoder.bias [d_model], the backbone.* of the
language model (layers and norm_f), decoder.weight [d_output, d_model], decoder.bias [d_output].

The outputs come from the whole-sequence float64 references of make_golden.py (Mamba-1: the scan as
explicit decay products) and make_golden_mamba2.py (chunked SSD), unchanged: their embedding lookup is
given the encoded inputs as rows (token t selects row t) and their head is the decoder.

    /usr/bin/python3 tests/golden/make_golden_vector_heads.py
"""
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from st_io import write_safetensors, write_npy  # noqa: E402
import make_golden  # noqa: E402
import make_golden_mamba2  # noqa: E402


def encode(W, cfg, x):
    if "input_mean" in cfg:
        x = (x - np.array(cfg["input_mean"])) / np.array(cfg["input_std"])
    return x @ W["encoder.weight"].T + W["encoder.bias"]


def write(out, cfg, W, x, y, states):
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    write_npy(os.path.join(out, "inputs.npy"), x)
    write_npy(os.path.join(out, "outputs.npy"), y)
    write_npy(os.path.join(out, "state_conv.npy"), states[0])
    write_npy(os.path.join(out, "state_ssm.npy"), states[1])


def mamba1_case(name, seed, T=40):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    c = dict(d=24, L=2, N=6, K=4, E=48, R=3, eps=1e-5)
    din, dout = 5, 3
    W = make_golden.random_weights(rng, c, 1, {"emb": "unused"}, False, False, False)
    del W["unused"]
    W["encoder.weight"] = rng.normal(0, din ** -0.5, (c["d"], din))
    W["encoder.bias"] = rng.normal(0, 0.1, c["d"])
    W["decoder.weight"] = rng.normal(0, c["d"] ** -0.5, (dout, c["d"]))
    W["decoder.bias"] = rng.normal(0, 0.1, dout)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), W, "F32")
    cfg = {"model_type": "mamba", "d_input": din, "d_output": dout, "hidden_size": c["d"], "state_size": c["N"],
           "num_hidden_layers": c["L"], "intermediate_size": c["E"], "conv_kernel": c["K"], "time_step_rank": c["R"],
           "layer_norm_epsilon": c["eps"], "use_bias": False, "use_conv_bias": True, "tie_word_embeddings": False,
           "input_mean": [0.1, -0.2, 0.3, 0.0, 1.0], "input_std": [1.0, 2.0, 0.5, 1.5, 3.0]}
    x = rng.normal(0, 1.5, (T, din)).astype(np.float32).astype(np.float64)
    Wr = dict(stored)
    Wr["__rows"] = encode(stored, cfg, x)
    Wr["__head"] = stored["decoder.weight"]
    y, conv, ssm = make_golden.reference(Wr, c, np.arange(T), {"emb": "__rows", "head": "__head"})
    y = y + stored["decoder.bias"]
    write(out, cfg, W, x, y, (conv, ssm))
    print(f"{name}: T={T} max|y|={np.abs(y).max():.3f}")


def mamba2_case(name, seed, T=32):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    c = dict(d=32, L=2, N=8, K=4, H=4, P=16, G=2, eps=1e-5, Q=8, tmin=0.0, tmax=np.inf)
    d, L, N, K, H, P, G = (c[k] for k in ("d", "L", "N", "K", "H", "P", "G"))
    din, dout = 2, 4
    W = {"backbone.norm_f.weight": rng.uniform(0.5, 1.5, d),
         "encoder.weight": rng.normal(0, din ** -0.5, (d, din)), "encoder.bias": rng.normal(0, 0.1, d),
         "decoder.weight": rng.normal(0, d ** -0.5, (dout, d)), "decoder.bias": rng.normal(0, 0.1, dout)}
    make_golden_mamba2.random_layers(rng, c, W, d_per_channel=False)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), W, "F32")
    cfg = {"model_type": "mamba2", "d_input": din, "d_output": dout, "hidden_size": d, "num_heads": H,
           "head_dim": P, "state_size": N, "expand": 2, "n_groups": G, "conv_kernel": K, "num_hidden_layers": L,
           "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True, "rms_norm": True,
           "tie_word_embeddings": False}
    x = rng.normal(0, 1, (T, din)).astype(np.float32).astype(np.float64)
    Wr = dict(stored)
    Wr["backbone.embeddings.weight"] = encode(stored, cfg, x)
    Wr["lm_head.weight"] = stored["decoder.weight"]
    y, conv, ssm = make_golden_mamba2.reference(Wr, c, np.arange(T))
    y = y + stored["decoder.bias"]
    write(out, cfg, W, x, y, (conv, ssm))
    print(f"{name}: T={T} max|y|={np.abs(y).max():.3f}")


if __name__ == "__main__":
    mamba1_case("mamba1_vector", 21)
    mamba2_case("mamba2_vector", 22)
