#!/usr/bin/python3
"""Make rill's RetNet golden fixtures: random-weight checkpoints in flash-linear-attention's Hugging Face
layout (RetNetForCausalLM) and the outputs of an independent float64 reference.

The reference is the parallel form of retention, never the recurrence: per head h, with the fixed
decay γ_h = 1 − 2^(−5−h) and q, k rotated by their position (rotate-half, base 10000, over all head_k
channels, as fla's RotaryEmbedding),
    y_t = Σ_{s<=t} γ^(t−s) (q_t K^-1/2 · k_s) v_s,    S = Σ_s γ^(T−1−s) v_s k_sᵀ

    /usr/bin/python3 tests/golden/make_golden_retnet.py

Outputs per case: model.safetensors, config.json, tokens.txt, logits.npy [T, V], state_wkv.npy
[L, H, V, K], and with the short convolution state_conv.npy [L, Kc-1, 2HK + HV].
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
from ref_common import write_fla_case, silu, rmsnorm, causal_conv  # noqa: E402
import make_golden_gla as gla  # noqa: E402  (the block's weights and config fields are GLA's, less the gate)


def rotary(x, K):
    """x [T, H*K]: each head's K channels rotated by position t (rotate-half convention)."""
    T = x.shape[0]
    inv = 1.0 / 10000.0 ** (np.arange(0, K, 2) / K)
    ang = np.arange(T)[:, None] * inv[None, :]  # [T, K/2]
    cos, sin = np.cos(ang), np.sin(ang)
    y = x.reshape(T, -1, K).copy()
    a, b = y[..., :K // 2].copy(), y[..., K // 2:].copy()
    y[..., :K // 2] = a * cos[:, None, :] - b * sin[:, None, :]
    y[..., K // 2:] = b * cos[:, None, :] + a * sin[:, None, :]
    return y.reshape(T, -1)


def reference(W, c, tokens):
    L, H, K, V, eps = c["L"], c["H"], c["K"], c["V"], c["eps"]
    T = len(tokens)
    x = W["model.embeddings.weight"][tokens]
    convs, wkvs = [], []
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        u = rmsnorm(x, W[p + "attn_norm.weight"], eps)
        qkv = np.concatenate([u @ W[a + n + "_proj.weight"].T for n in "qkv"], 1)
        if c["conv"]:
            wconv = np.concatenate([W[a + n + "_conv1d.weight"][:, 0, :] for n in "qkv"], 0)
            qkv, hist = causal_conv(qkv, wconv, 0)
            qkv = silu(qkv)
            convs.append(hist)
        kd = H * K
        q, k, v = rotary(qkv[:, :kd], K) * K ** -0.5, rotary(qkv[:, kd:2 * kd], K), qkv[:, 2 * kd:]
        y = np.zeros((T, H * V))
        S_heads = []
        t_idx = np.arange(T)
        for h in range(H):
            g = 1 - 2.0 ** (-5 - h)
            ks, vs = slice(h * K, (h + 1) * K), slice(h * V, (h + 1) * V)
            D = np.where(t_idx[:, None] >= t_idx[None, :], g ** (t_idx[:, None] - t_idx[None, :]).astype(float), 0.0)
            y[:, vs] = ((q[:, ks] @ k[:, ks].T) * D) @ v[:, vs]
            S_heads.append((v[:, vs] * (g ** (T - 1 - t_idx))[:, None]).T @ k[:, ks])
        norm_w = W[a + ("g_norm_swish_gate.weight" if c["fuse_norm"] else "g_norm.weight")]
        o = rmsnorm(y.reshape(T, H, V), norm_w, eps).reshape(T, H * V) * silu(u @ W[a + "g_proj.weight"].T)
        x = x + o @ W[a + "o_proj.weight"].T
        u2 = rmsnorm(x, W[p + "mlp_norm.weight"], eps)
        x = x + (silu(u2 @ W[p + "mlp.gate_proj.weight"].T) * (u2 @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        wkvs.append(np.stack(S_heads))
    head = W["model.embeddings.weight"] if c["tied"] else W["lm_head.weight"]
    logits = rmsnorm(x, W["model.norm.weight"], eps) @ head.T
    return logits, (np.stack(convs) if convs else None), np.stack(wkvs)


def random_weights(rng, c):
    W = gla.random_weights(rng, dict(c, R=1))
    for i in range(c["L"]):  # retention has no gate projection
        for n in ("gk_proj.0.weight", "gk_proj.1.weight", "gk_proj.1.bias"):
            del W[f"model.layers.{i}.attn.{n}"]
    return W


def make_case(name, seed, c, config_json, dtype, T=64):
    write_fla_case(os.path.join(HERE, name), seed, c, config_json, dtype, random_weights, reference, T)


def config(c, **extra):
    j = {"model_type": "retnet", "architectures": ["RetNetForCausalLM"], "attn": None, "attn_mode": "chunk",
         "hidden_size": c["d"], "num_hidden_layers": c["L"], "num_heads": c["H"], "num_kv_heads": None,
         "expand_k": c["H"] * c["K"] / c["d"], "expand_v": c["H"] * c["V"] / c["d"], "feature_map": None,
         "use_short_conv": c["conv"], "conv_size": c["Kc"], "use_output_gate": True, "hidden_act": "swish",
         "elementwise_affine": True, "norm_eps": c["eps"], "hidden_ratio": 2, "intermediate_size": c["F"],
         "max_position_embeddings": 2048, "vocab_size": c["vocab"], "tie_word_embeddings": c["tied"],
         "fuse_norm": c["fuse_norm"], "fuse_swiglu": True, "fuse_cross_entropy": True, "use_cache": True,
         "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None,
         "torch_dtype": "bfloat16", "transformers_version": "4.45.0"}
    j.update(extra)
    return j


def main():
    # 1. The released head sizes of fla-hub's RetNet 1.3B (head_k 256, head_v 512: expand_k 1 and expand_v 2
    #    over 8 heads of 2048), here one head; the fused output norm; bf16; untied; vocab 131.
    c = dict(d=64, L=2, H=1, K=256, V=512, F=96, vocab=131, Kc=4, conv=False, eps=1e-6, tied=False, fuse_norm=True)
    make_case("retnet_hf_bf16", 101, c, config(c), "BF16")
    # 2. A small head (8 keys, 16 values), 3 heads (three decays), the short convolution (width 3), the
    #    unfused norm's name (g_norm), norm_eps 1e-5, tied head, f32.
    c = dict(d=48, L=3, H=3, K=8, V=16, F=80, vocab=77, Kc=3, conv=True, eps=1e-5, tied=True, fuse_norm=False)
    make_case("retnet_conv_tied", 102, c, config(c, torch_dtype="float32"), "F32")


if __name__ == "__main__":
    main()
