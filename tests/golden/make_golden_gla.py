#!/usr/bin/python3
"""Make rill's GLA golden fixtures: random-weight checkpoints in flash-linear-attention's Hugging Face
layout (GLAForCausalLM) and the outputs of an independent float64 reference.

The reference is the parallel (attention-like) form of gated linear attention, never the recurrence:
per head, with log-decays lw_t = logsigmoid(gk_t) / gate_logit_normalizer and c_t = Σ_{τ<=t} lw_τ,
    y_t = Σ_{s<=t} ((q_t K^-1/2) * exp(c_t − c_s)) · k_s  v_s
and the final state S[i][j] = Σ_s v_s[i] k_s[j] exp(c_{T−1} − c_s)[j].

    /usr/bin/python3 tests/golden/make_golden_gla.py

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


def logsigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def gla_parallel(q, k, v, lw):
    """One head: q, k, lw [T, K], v [T, V]. Returns y [T, V] and the final state [V, K]."""
    T = q.shape[0]
    c = np.cumsum(lw, 0)
    y = np.zeros((T, v.shape[1]))
    for t in range(T):
        A = np.array([np.dot(q[t] * np.exp(c[t] - c[s]), k[s]) for s in range(t + 1)])
        y[t] = A @ v[:t + 1]
    S = sum(np.outer(v[s], k[s] * np.exp(c[T - 1] - c[s])) for s in range(T))
    return y, S


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
        q, k, v = qkv[:, :kd] * K ** -0.5, qkv[:, kd:2 * kd], qkv[:, 2 * kd:]
        gk = (u @ W[a + "gk_proj.0.weight"].T) @ W[a + "gk_proj.1.weight"].T + W[a + "gk_proj.1.bias"]
        lw = logsigmoid(gk) / c["gnorm"]
        y = np.zeros((T, H * V))
        S_heads = []
        for h in range(H):
            ks, vs = slice(h * K, (h + 1) * K), slice(h * V, (h + 1) * V)
            y[:, vs], S = gla_parallel(q[:, ks], k[:, ks], v[:, vs], lw[:, ks])
            S_heads.append(S)
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
    d, L, H, K, V, R, F, Vocab, Kc = c["d"], c["L"], c["H"], c["K"], c["V"], c["R"], c["F"], c["vocab"], c["Kc"]
    W = {"model.embeddings.weight": rng.normal(0, 1, (Vocab, d)), "model.norm.weight": rng.uniform(0.5, 1.5, d)}
    if not c["tied"]:
        W["lm_head.weight"] = rng.normal(0, d ** -0.5, (Vocab, d))
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        W[p + "attn_norm.weight"] = rng.uniform(0.5, 1.5, d)
        W[p + "mlp_norm.weight"] = rng.uniform(0.5, 1.5, d)
        for n, rows in (("q", H * K), ("k", H * K), ("v", H * V), ("g", H * V)):
            W[a + n + "_proj.weight"] = rng.normal(0, d ** -0.5, (rows, d))
        if c["conv"]:
            for n, ch in (("q", H * K), ("k", H * K), ("v", H * V)):
                W[a + n + "_conv1d.weight"] = rng.normal(0, Kc ** -0.5, (ch, 1, Kc))
        W[a + "gk_proj.0.weight"] = rng.normal(0, d ** -0.5, (R, d))
        W[a + "gk_proj.1.weight"] = rng.normal(0, R ** -0.5, (H * K, R))
        W[a + "gk_proj.1.bias"] = rng.normal(2, 1, H * K)  # slow decays mostly, as trained models have
        W[a + ("g_norm_swish_gate.weight" if c["fuse_norm"] else "g_norm.weight")] = rng.uniform(0.5, 1.5, V)
        W[a + "o_proj.weight"] = rng.normal(0, (H * V) ** -0.5, (d, H * V))
        W[p + "mlp.gate_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
        W[p + "mlp.up_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
        W[p + "mlp.down_proj.weight"] = rng.normal(0, F ** -0.5, (d, F))
    return W


def make_case(name, seed, c, config_json, dtype, T=64):
    write_fla_case(os.path.join(HERE, name), seed, c, config_json, dtype, random_weights, reference, T)


def config(c, **extra):
    j = {"model_type": "gla", "architectures": ["GLAForCausalLM"], "attn": None, "attn_mode": "chunk",
         "hidden_size": c["d"], "num_hidden_layers": c["L"], "num_heads": c["H"], "num_kv_heads": None,
         "expand_k": c["H"] * c["K"] / c["d"], "expand_v": c["H"] * c["V"] / c["d"], "feature_map": None,
         "use_short_conv": c["conv"], "conv_size": c["Kc"], "use_output_gate": True, "clamp_min": None,
         "hidden_act": "swish", "elementwise_affine": True, "norm_eps": c["eps"], "gate_logit_normalizer": c["gnorm"],
         "gate_low_rank_dim": c["R"], "hidden_ratio": 4, "intermediate_size": c["F"], "max_position_embeddings": 2048,
         "vocab_size": c["vocab"], "tie_word_embeddings": c["tied"], "fuse_norm": c["fuse_norm"], "fuse_swiglu": True,
         "fuse_cross_entropy": True, "use_cache": True, "initializer_range": 0.02, "bos_token_id": 1,
         "eos_token_id": 2, "pad_token_id": None, "torch_dtype": "bfloat16", "transformers_version": "4.45.0"}
    j.update(extra)
    return j


def main():
    # 1. GLA-340M's head sizes (head_k 128, head_v 256), 2 heads, gate rank 16, normalizer 16, no short
    #    convolution, the fused output norm (g_norm_swish_gate), bf16, untied, vocab 131.
    c = dict(d=64, L=2, H=2, K=128, V=256, R=16, F=96, vocab=131, Kc=4, conv=False, gnorm=16, eps=1e-6, tied=False,
             fuse_norm=True)
    make_case("gla_hf_bf16", 91, c, config(c), "BF16")
    # 2. A small head (8 keys, 16 values), 3 heads, the short convolution (width 3), the unfused norm's name
    #    (g_norm), normalizer 8, norm_eps 1e-5, tied head, f32.
    c = dict(d=48, L=3, H=3, K=8, V=16, R=4, F=80, vocab=77, Kc=3, conv=True, gnorm=8, eps=1e-5, tied=True,
             fuse_norm=False)
    make_case("gla_conv_tied", 92, c, config(c, torch_dtype="float32"), "F32")


if __name__ == "__main__":
    main()
