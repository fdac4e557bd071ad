#!/usr/bin/python3
"""Make rill's Mamba-2 golden fixtures: random-weight checkpoints in the Hugging Face
`Mamba2ForCausalLM` layout and outputs of an independent float64 reference.

The reference computes the SSM with the chunked SSD algorithm (Mamba-2 paper, `ssd_minimal_discrete`):
inside each chunk the quadratic (attention-like) form with the segment-sum decay matrix, between
chunks a scan over chunk states. It never steps the per-token recurrence the C++ code uses.

    /usr/bin/python3 tests/golden/make_golden_mamba2.py

Outputs per case: checkpoint files, tokens.txt, logits.npy [T, V], state_conv.npy [L, K-1, conv_dim],
state_ssm.npy [L, H, P, N].
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
from ref_common import softplus, silu, rmsnorm, causal_conv  # noqa: E402


def segsum(x):
    """x [..., T] -> [..., T, T] with out[i, j] = sum_{j<k<=i} x[k] for j <= i, -inf above."""
    T = x.shape[-1]
    cs = np.cumsum(x, -1)
    out = cs[..., :, None] - cs[..., None, :]
    mask = np.tril(np.ones((T, T), dtype=bool))
    return np.where(mask, out, -np.inf)


def ssd_chunked(X, A, B, C, Q):
    """X [T, H, P] (already x*dt), A [T, H] (dt*A), B, C [T, H, N]. Returns Y [T, H, P], final state [H, P, N]."""
    T, H, P = X.shape
    nc = T // Q
    X, A, B, C = (v.reshape(nc, Q, *v.shape[1:]) for v in (X, A, B, C))
    A = A.transpose(2, 0, 1)  # [H, c, l]
    Acs = np.cumsum(A, -1)
    L = np.exp(segsum(A))  # [H, c, l, s]
    Y_diag = np.einsum("clhn,cshn,hcls,cshp->clhp", C, B, L, X)
    decay_states = np.exp(Acs[:, :, -1:] - Acs)  # [H, c, l]
    states = np.einsum("clhn,hcl,clhp->chpn", B, decay_states, X)
    states = np.concatenate([np.zeros_like(states[:1]), states], 0)  # [c+1, H, P, N]
    decay_chunk = np.exp(segsum(np.pad(Acs[:, :, -1], ((0, 0), (1, 0)))))  # [H, c+1, c+1]
    new_states = np.einsum("hzc,chpn->zhpn", decay_chunk, states)
    states, final = new_states[:-1], new_states[-1]
    Y_off = np.einsum("clhn,chpn,hcl->clhp", C, states, np.exp(Acs))
    return (Y_diag + Y_off).reshape(T, H, P), final


def reference(W, c, tokens):
    d, L, N, K, H, P, G, eps, Q = (c[k] for k in ("d", "L", "N", "K", "H", "P", "G", "eps", "Q"))
    E = H * P
    T = len(tokens)
    h = W["backbone.embeddings.weight"][tokens]
    convs, ssms = [], []
    for i in range(L):
        p = f"backbone.layers.{i}.mixer."
        u = rmsnorm(h, W[f"backbone.layers.{i}.norm.weight"], eps)
        zxbcdt = u @ W[p + "in_proj.weight"].T
        z, xBC, dtr = zxbcdt[:, :E], zxbcdt[:, E:2 * E + 2 * G * N], zxbcdt[:, 2 * E + 2 * G * N:]
        conv, hist = causal_conv(xBC, W[p + "conv1d.weight"][:, 0, :], W[p + "conv1d.bias"])
        xbc = silu(conv)
        x, B, C = xbc[:, :E], xbc[:, E:E + G * N], xbc[:, E + G * N:]
        dt = softplus(dtr + W[p + "dt_bias"])
        dt = np.clip(dt, c["tmin"], c["tmax"])
        A = -np.exp(W[p + "A_log"])  # [H]
        heads_per_group = H // G
        Bh = B.reshape(T, G, N)[:, np.arange(H) // heads_per_group]  # [T, H, N], contiguous map
        Ch = C.reshape(T, G, N)[:, np.arange(H) // heads_per_group]
        xh = x.reshape(T, H, P)
        Y, final = ssd_chunked(xh * dt[:, :, None], dt * A, Bh, Ch, Q)
        Dv = W[p + "D"]
        Dfull = np.repeat(Dv, P) if Dv.shape[0] == H else Dv
        y = Y.reshape(T, E) + Dfull * x
        y = y * silu(z)
        yg = y.reshape(T, G, E // G)  # gated RMSNorm per group (mamba_ssm form)
        yg = yg / np.sqrt((yg * yg).mean(-1, keepdims=True) + eps)
        y = yg.reshape(T, E) * W[p + "norm.weight"]
        h = h + y @ W[p + "out_proj.weight"].T
        convs.append(hist)
        ssms.append(final)
    head = W.get("lm_head.weight", W["backbone.embeddings.weight"])
    logits = rmsnorm(h, W["backbone.norm_f.weight"], eps) @ head.T
    return logits, np.stack(convs), np.stack(ssms)


def random_layers(rng, c, W, d_per_channel):
    """Random weights of every backbone layer into W (shapes of the Hugging Face layout)."""
    d, L, N, K, H, P, G = (c[k] for k in ("d", "L", "N", "K", "H", "P", "G"))
    E = H * P
    conv_dim = E + 2 * G * N
    for i in range(L):
        p = f"backbone.layers.{i}."
        W[p + "norm.weight"] = rng.uniform(0.5, 1.5, d)
        W[p + "mixer.in_proj.weight"] = rng.normal(0, d ** -0.5, (2 * E + 2 * G * N + H, d))
        W[p + "mixer.conv1d.weight"] = rng.uniform(-0.6, 0.6, (conv_dim, 1, K))
        W[p + "mixer.conv1d.bias"] = rng.normal(0, 0.1, conv_dim)
        dt = np.exp(rng.uniform(math.log(0.01), math.log(0.5), H))
        W[p + "mixer.dt_bias"] = dt + np.log(-np.expm1(-dt))
        W[p + "mixer.A_log"] = np.log(rng.uniform(1, 16, H))
        W[p + "mixer.D"] = rng.uniform(0.5, 1.5, E if d_per_channel else H)
        W[p + "mixer.norm.weight"] = rng.uniform(0.5, 1.5, E)
        W[p + "mixer.out_proj.weight"] = rng.normal(0, E ** -0.5, (d, E))


def make_case(name, seed, c, V, cfg_json, dtype, untied, d_per_channel, T=24):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    d, L, N, K, H, P, G = (c[k] for k in ("d", "L", "N", "K", "H", "P", "G"))
    W = {"backbone.embeddings.weight": rng.normal(0, 1, (V, d)), "backbone.norm_f.weight": rng.uniform(0.5, 1.5, d)}
    if untied:
        W["lm_head.weight"] = rng.normal(0, d ** -0.5, (V, d))
    random_layers(rng, c, W, d_per_channel)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), W, dtype)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=1)
    tokens = rng.integers(0, V, T)
    logits, conv, ssm = reference(stored, c, tokens)
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(int(t)) for t in tokens) + "\n")
    write_npy(os.path.join(out, "logits.npy"), logits)
    write_npy(os.path.join(out, "state_conv.npy"), conv)
    write_npy(os.path.join(out, "state_ssm.npy"), ssm)
    print(f"{name}: V={V} d={d} H={H} P={P} G={G} N={N} K={K} L={L} max|logit|={np.abs(logits).max():.3f} "
          f"max|ssm|={np.abs(ssm).max():.3f}")


def main():
    # 1. n_groups 2 with 4 heads, head_dim 24 (not a power of two), dt clamp (0.02, 0.3), untied head,
    #    vocab 53, D per head. f32. Chunks of 8 over 24 tokens.
    c = dict(d=48, L=2, N=16, K=4, H=4, P=24, G=2, eps=1e-5, Q=8, tmin=0.02, tmax=0.3)
    make_case("mamba2_groups", 11, c, 53, {
        "architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2", "vocab_size": 53, "hidden_size": 48,
        "num_heads": 4, "head_dim": 24, "state_size": 16, "expand": 2, "n_groups": 2, "conv_kernel": 4,
        "num_hidden_layers": 2, "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True,
        "rms_norm": True, "time_step_limit": [0.02, 0.3], "time_step_rank": "auto", "chunk_size": 256,
        "residual_in_fp32": True, "tie_word_embeddings": False, "time_step_min": 0.001, "time_step_max": 0.1,
        "time_step_floor": 1e-4, "initializer_range": 0.1, "rescale_prenorm_residual": False, "norm_before_gate": False,
        "hidden_act": "silu", "use_cache": True, "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 0,
        "pad_token_id": 0}, "F32", True, False)
    # 2. One group, head_dim 32, conv_kernel 3, tied head, D per channel (mamba_ssm D_has_hdim), no dt
    #    clamp (time_step_limit [0, inf] written as JSON's non-standard Infinity, as Python writes it), bf16.
    c = dict(d=32, L=2, N=8, K=3, H=2, P=32, G=1, eps=1e-5, Q=6, tmin=0.0, tmax=np.inf)
    make_case("mamba2_tied_bf16", 12, c, 40, {
        "architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2", "vocab_size": 40, "hidden_size": 32,
        "num_heads": 2, "head_dim": 32, "state_size": 8, "expand": 2, "n_groups": 1, "conv_kernel": 3,
        "num_hidden_layers": 2, "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True,
        "rms_norm": True, "time_step_limit": [0.0, float("inf")], "tie_word_embeddings": True}, "BF16", False, True)

    # 3. The released models' head shape: head_dim 64, state_size 128 (Mamba-2 130m to 2.7b, Granite 4.0-H,
    #    Nemotron-H), one group, bf16, 48 tokens: the shape whose prefill takes the chunked SSD
    #    (forward_test, chunked_prefill). Chunks of 16 over 48 tokens here.
    c = dict(d=64, L=2, N=128, K=4, H=2, P=64, G=1, eps=1e-5, Q=16, tmin=0.0, tmax=np.inf)
    make_case("mamba2_hf_state128", 13, c, 61, {
        "architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2", "vocab_size": 61, "hidden_size": 64,
        "num_heads": 2, "head_dim": 64, "state_size": 128, "expand": 2, "n_groups": 1, "conv_kernel": 4,
        "num_hidden_layers": 2, "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True,
        "rms_norm": True, "time_step_limit": [0.0, float("inf")], "tie_word_embeddings": True}, "BF16", False, False,
        T=48)


if __name__ == "__main__":
    main()
