#!/usr/bin/python3
"""Make rill's Mamba-1 golden fixtures: small random-weight checkpoints in the Hugging Face layout
(or mamba_ssm naming) and the outputs of an independent float64 reference.

The reference runs over the whole sequence at once, in the parallel form of the selective scan:
with a_t = dt_t * A (log-decay) and cum_t = sum_{r<=t} a_r,
    h_t = sum_{s<=t} exp(cum_t - cum_s) * dt_s * B_s * x_s
(the [T, T] segment-sum matrix, as in the SSD paper's minimal reference), and the causal conv as a
full zero-padded convolution over the sequence. Nothing here steps a recurrent state, so it shares
no structure with the C++ step under test.

    /usr/bin/python3 tests/golden/make_golden.py      # rewrites tests/golden/<case>/

Outputs per case: the checkpoint files, tokens.txt, logits.npy [T, V] (f32), state_conv.npy
[L, K-1, E] (the last K-1 conv inputs), state_ssm.npy [L, E, N].
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


def reference(W, cfg, tokens, prefix):
    """Whole-sequence float64 forward. W: name -> float64 array (as stored). Returns logits, states."""
    d, L, N, K, E, R, eps = (cfg[k] for k in ("d", "L", "N", "K", "E", "R", "eps"))
    T = len(tokens)
    emb = W[prefix["emb"]]
    h = emb[tokens]  # [T, d]
    convs, ssms = [], []
    for i in range(L):
        p = f"backbone.layers.{i}."
        u = rmsnorm(h, W[p + "norm.weight"], eps)
        xz = u @ W[p + "mixer.in_proj.weight"].T
        if p + "mixer.in_proj.bias" in W:
            xz = xz + W[p + "mixer.in_proj.bias"]
        x, z = xz[:, :E], xz[:, E:]
        # causal depthwise conv: out[t] = b + sum_k w[:, k] * x[t - K + 1 + k] (zero history)
        conv, hist = causal_conv(x, W[p + "mixer.conv1d.weight"][:, 0, :], W.get(p + "mixer.conv1d.bias", 0.0))
        xc = silu(conv)  # [T, E]
        dbc = xc @ W[p + "mixer.x_proj.weight"].T
        dlow, B, C = dbc[:, :R], dbc[:, R:R + N], dbc[:, R + N:]
        dt = softplus(dlow @ W[p + "mixer.dt_proj.weight"].T + W[p + "mixer.dt_proj.bias"])  # [T, E]
        A = -np.exp(W[p + "mixer.A_log"])  # [E, N]
        cum = np.cumsum(dt[:, :, None] * A[None], axis=0)  # [T, E, N]
        seg = cum[:, None] - cum[None, :]  # [t, s, E, N] = sum_{s<r<=t} a_r
        mask = np.tril(np.ones((T, T), dtype=bool))[:, :, None, None]
        decay = np.where(mask, np.exp(np.where(mask, seg, 0.0)), 0.0)
        inp = dt[:, :, None] * B[:, None, :] * xc[:, :, None]  # [s, E, N]
        H = np.einsum("tsen,sen->ten", decay, inp)  # [T, E, N]
        y = np.einsum("ten,tn->te", H, C) + W[p + "mixer.D"] * xc
        y = y * silu(z)
        o = y @ W[p + "mixer.out_proj.weight"].T
        if p + "mixer.out_proj.bias" in W:
            o = o + W[p + "mixer.out_proj.bias"]
        h = h + o
        convs.append(hist)  # last K-1 conv inputs
        ssms.append(H[-1])
    head = W[prefix["head"]] if prefix["head"] in W else emb
    logits = rmsnorm(h, W["backbone.norm_f.weight"], eps) @ head.T
    return logits, np.stack(convs), np.stack(ssms)


def random_weights(rng, cfg, V, names, in_bias, out_bias, untied):
    d, L, N, K, E, R = (cfg[k] for k in ("d", "L", "N", "K", "E", "R"))
    W = {names["emb"]: rng.normal(0, 1, (V, d)), "backbone.norm_f.weight": rng.uniform(0.5, 1.5, d)}
    if untied:
        W["lm_head.weight"] = rng.normal(0, d ** -0.5, (V, d))
    for i in range(L):
        p = f"backbone.layers.{i}."
        W[p + "norm.weight"] = rng.uniform(0.5, 1.5, d)
        W[p + "mixer.in_proj.weight"] = rng.normal(0, d ** -0.5, (2 * E, d))
        if in_bias:
            W[p + "mixer.in_proj.bias"] = rng.normal(0, 0.1, 2 * E)
        W[p + "mixer.conv1d.weight"] = rng.uniform(-0.6, 0.6, (E, 1, K))
        W[p + "mixer.conv1d.bias"] = rng.normal(0, 0.1, E)
        W[p + "mixer.x_proj.weight"] = rng.normal(0, E ** -0.5, (R + 2 * N, E))
        W[p + "mixer.dt_proj.weight"] = rng.normal(0, R ** -0.5, (E, R))
        dt = np.exp(rng.uniform(math.log(0.01), math.log(0.5), E))
        W[p + "mixer.dt_proj.bias"] = dt + np.log(-np.expm1(-dt))  # softplus^-1
        W[p + "mixer.A_log"] = np.log(np.arange(1, N + 1, dtype=np.float64))[None].repeat(E, 0) + rng.normal(0, 0.1, (E, N))
        W[p + "mixer.D"] = rng.uniform(0.5, 1.5, E)
        W[p + "mixer.out_proj.weight"] = rng.normal(0, E ** -0.5, (d, E))
        if out_bias:
            W[p + "mixer.out_proj.bias"] = rng.normal(0, 0.1, d)
    return W


def make_case(name, seed, cfg, V, vocab_cfg, config_json, names, dtype, shards, in_bias, out_bias, untied, T=24,
              out=None, tokenizer=None):
    out = out or os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    W = random_weights(rng, cfg, V, names, in_bias, out_bias, untied)
    stored = {}
    keys = sorted(W)
    if shards == 1:
        stored.update(write_safetensors(os.path.join(out, "model.safetensors"), W, dtype))
    else:
        parts = [keys[i::shards] for i in range(shards)]
        weight_map = {}
        for j, part in enumerate(parts):
            fn = f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
            stored.update(write_safetensors(os.path.join(out, fn), {k: W[k] for k in part}, dtype))
            weight_map.update({k: fn for k in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json, f, indent=1)
    if tokenizer:
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer, f, indent=1)
    tokens = rng.integers(0, vocab_cfg, T)
    logits, conv, ssm = reference(stored, cfg, tokens, {"emb": names["emb"], "head": "lm_head.weight"})
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(int(t)) for t in tokens) + "\n")
    write_npy(os.path.join(out, "logits.npy"), logits)
    write_npy(os.path.join(out, "state_conv.npy"), conv)
    write_npy(os.path.join(out, "state_ssm.npy"), ssm)
    print(f"{name}: V={V} d={cfg['d']} E={cfg['E']} N={cfg['N']} K={cfg['K']} R={cfg['R']} L={cfg['L']} "
          f"max|logit|={np.abs(logits).max():.3f} max|ssm|={np.abs(ssm).max():.3f}")


HF = {"emb": "backbone.embeddings.weight"}
SSM = {"emb": "backbone.embedding.weight"}


def main():
    # 1. Awkward shapes: d_model 40 (not a multiple of 16), conv_kernel 3, explicit time_step_rank 5
    #    (ceil(40/16) = 3), untied head, vocab 37 (not a multiple of 8). f32, HF naming, one file.
    cfg = dict(d=40, L=2, N=8, K=3, E=80, R=5, eps=1e-5)
    make_case("mamba1_awkward", 1, cfg, 37, 37, {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": 37, "hidden_size": 40,
        "state_size": 8, "num_hidden_layers": 2, "expand": 2, "intermediate_size": 80, "conv_kernel": 3,
        "time_step_rank": 5, "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True,
        "hidden_act": "silu", "residual_in_fp32": True, "tie_word_embeddings": False,
        "time_step_min": 0.001, "time_step_max": 0.1, "time_step_init_scheme": "random", "time_step_floor": 1e-4,
        "time_step_scale": 1.0, "initializer_range": 0.1, "rescale_prenorm_residual": False, "use_cache": True,
        "torch_dtype": "float32", "transformers_version": "4.46.0", "bos_token_id": 0, "eos_token_id": 0,
        "pad_token_id": 0}, HF, "F32", 1, False, False, True)
    # 2. Original mamba_ssm naming and config, tied head, in/out projection biases, bf16 weights in
    #    two shards with an index, vocab 45 padded to 48 rows (pad_vocab_size_multiple 8).
    cfg = dict(d=24, L=3, N=4, K=4, E=48, R=2, eps=1e-5)
    make_case("mamba1_ssm_bf16_sharded", 2, cfg, 48, 45, {
        "d_model": 24, "n_layer": 3, "vocab_size": 45, "ssm_cfg": {"d_state": 4, "d_conv": 4, "expand": 2},
        "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8,
        "tie_embeddings": True}, SSM, "BF16", 2, True, True, False)
    # 3. HF naming with f16 weights, tied head, time_step_rank "auto" (32/16 = 2), conv_kernel 4.
    cfg = dict(d=32, L=2, N=16, K=4, E=64, R=2, eps=1e-5)
    make_case("mamba1_hf_f16_tied", 3, cfg, 64, 64, {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": 64, "hidden_size": 32,
        "state_size": 16, "num_hidden_layers": 2, "expand": 2, "conv_kernel": 4, "time_step_rank": "auto",
        "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True, "hidden_act": "silu",
        "tie_word_embeddings": True}, HF, "F16", 1, False, False, False, T=32)
    # 4. A tiny byte-level model (vocab 256, byte tokenizer declared) for the tokenizer fuzzer.
    cfg = dict(d=16, L=1, N=4, K=4, E=32, R=1, eps=1e-5)
    make_case("byte_model", 4, cfg, 256, 256, {
        "model_type": "mamba", "vocab_size": 256, "hidden_size": 16, "state_size": 4, "num_hidden_layers": 1,
        "intermediate_size": 32, "conv_kernel": 4, "time_step_rank": 1, "tie_word_embeddings": True}, HF, "F16", 1,
        False, False, False, out=os.path.join(HERE, "..", "fuzz", "byte_model"),
        tokenizer={"tokenizer_class": "ByteTokenizer", "rill_tokenizer": "bytes"})


if __name__ == "__main__":
    main()
