#!/usr/bin/python3
"""Make rill's Gated DeltaNet golden fixtures: random-weight checkpoints in flash-linear-attention's
Hugging Face layout (GatedDeltaNetForCausalLM) and the outputs of an independent float64 reference.

The reference never carries a state from token to token. Per value head, with the transition
M_t = α_t (I − β_t k_t k_tᵀ) (acting on the state from the right) the state after token t is
    S_t = Σ_{s<=t} β_s v_s (k_sᵀ M_{s+1} ⋯ M_t)
so each source token's key row is carried through the explicit product of the later transitions, and
y_t = S_t q_t. q and k are L2-normalised per head (x / sqrt(Σx² + 1e-6)) and q scaled by K^-1/2, as
fla's kernels do with use_qk_l2norm_in_kernel; α = exp(−exp(A_log) softplus(a + dt_bias)),
β = sigmoid(b) (times 2 with allow_neg_eigval).

    /usr/bin/python3 tests/golden/make_golden_gated_deltanet.py

Outputs per case: model.safetensors, config.json, tokens.txt, logits.npy [T, V], state_conv.npy
[L, Kc-1, 2HK + HvV] (the conv history, oldest first: q, k, v channels), state_wkv.npy [L, Hv, V, K].
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
from ref_common import write_fla_case, softplus, silu, rmsnorm, causal_conv  # noqa: E402


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def l2norm(x):
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-6)


def delta_rule(q, k, v, alpha, beta):
    """One value head over the whole sequence: q, k [T, K], v [T, V], alpha, beta [T].
    Returns y [T, V] and the final state [V, K]."""
    T, K = k.shape
    rows = [None] * T  # rows[s]: k_s^T M_{s+1} ... M_t for the current t
    y = np.zeros((T, v.shape[1]))
    for t in range(T):
        M = alpha[t] * (np.eye(K) - beta[t] * np.outer(k[t], k[t]))
        for s in range(t):
            rows[s] = rows[s] @ M
        rows[t] = k[t].copy()
        # S_t q_t = sum_s beta_s v_s (row_s . q_t)
        coef = np.array([beta[s] * rows[s] @ q[t] for s in range(t + 1)])
        y[t] = coef @ v[:t + 1]
    S = sum(beta[s] * np.outer(v[s], rows[s]) for s in range(T))
    return y, S


def reference(W, c, tokens):
    L, H, Hv, K, V, eps = c["L"], c["H"], c["Hv"], c["K"], c["V"], c["eps"]
    T = len(tokens)
    x = W["model.embeddings.weight"][tokens]
    convs, wkvs = [], []
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        u = rmsnorm(x, W[p + "attn_norm.weight"], eps)
        qkv_in = np.concatenate([u @ W[a + n + "_proj.weight"].T for n in "qkv"], 1)
        wconv = np.concatenate([W[a + n + "_conv1d.weight"][:, 0, :] for n in "qkv"], 0)  # [C, Kc]
        qkv, hist = causal_conv(qkv_in, wconv, 0)
        qkv = silu(qkv)
        kd = H * K
        q, k, v = qkv[:, :kd], qkv[:, kd:2 * kd], qkv[:, 2 * kd:]
        alpha = np.exp(-np.exp(W[a + "A_log"]) * softplus(u @ W[a + "a_proj.weight"].T + W[a + "dt_bias"]))
        beta = sigmoid(u @ W[a + "b_proj.weight"].T) * (2.0 if c["neg"] else 1.0)
        y = np.zeros((T, Hv * V))
        S_heads = []
        for hv in range(Hv):
            hk = hv // (Hv // H)
            qh = l2norm(q[:, hk * K:(hk + 1) * K]) * K ** -0.5
            kh = l2norm(k[:, hk * K:(hk + 1) * K])
            yh, S = delta_rule(qh, kh, v[:, hv * V:(hv + 1) * V], alpha[:, hv], beta[:, hv])
            y[:, hv * V:(hv + 1) * V] = yh
            S_heads.append(S)
        o = rmsnorm(y.reshape(T, Hv, V), W[a + "o_norm.weight"], eps).reshape(T, Hv * V)
        o = o * silu(u @ W[a + "g_proj.weight"].T)
        x = x + o @ W[a + "o_proj.weight"].T
        u2 = rmsnorm(x, W[p + "mlp_norm.weight"], eps)
        m = silu(u2 @ W[p + "mlp.gate_proj.weight"].T) * (u2 @ W[p + "mlp.up_proj.weight"].T)
        x = x + m @ W[p + "mlp.down_proj.weight"].T
        convs.append(hist)
        wkvs.append(np.stack(S_heads))
    head = W["model.embeddings.weight"] if c["tied"] else W["lm_head.weight"]
    logits = rmsnorm(x, W["model.norm.weight"], eps) @ head.T
    return logits, np.stack(convs), np.stack(wkvs)


def random_weights(rng, c):
    d, L, H, Hv, K, V, Kc, F, Vocab = c["d"], c["L"], c["H"], c["Hv"], c["K"], c["V"], c["Kc"], c["F"], c["vocab"]
    W = {"model.embeddings.weight": rng.normal(0, 1, (Vocab, d)), "model.norm.weight": rng.uniform(0.5, 1.5, d)}
    if not c["tied"]:
        W["lm_head.weight"] = rng.normal(0, d ** -0.5, (Vocab, d))
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        W[p + "attn_norm.weight"] = rng.uniform(0.5, 1.5, d)
        W[p + "mlp_norm.weight"] = rng.uniform(0.5, 1.5, d)
        for n, rows in (("q", H * K), ("k", H * K), ("v", Hv * V), ("g", Hv * V), ("a", Hv), ("b", Hv)):
            W[a + n + "_proj.weight"] = rng.normal(0, d ** -0.5, (rows, d))
        for n, ch in (("q", H * K), ("k", H * K), ("v", Hv * V)):
            W[a + n + "_conv1d.weight"] = rng.normal(0, Kc ** -0.5, (ch, 1, Kc))
        W[a + "A_log"] = np.log(rng.uniform(1, 16, Hv))
        dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), Hv))
        W[a + "dt_bias"] = dt + np.log(-np.expm1(-dt))
        W[a + "o_norm.weight"] = rng.uniform(0.5, 1.5, V)
        W[a + "o_proj.weight"] = rng.normal(0, (Hv * V) ** -0.5, (d, Hv * V))
        W[p + "mlp.gate_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
        W[p + "mlp.up_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
        W[p + "mlp.down_proj.weight"] = rng.normal(0, F ** -0.5, (d, F))
    return W


def make_case(name, seed, c, config_json, dtype, T=64):
    write_fla_case(os.path.join(HERE, name), seed, c, config_json, dtype, random_weights, reference, T)


def config(c, **extra):
    j = {"model_type": "gated_deltanet", "architectures": ["GatedDeltaNetForCausalLM"], "attn": None,
         "attn_mode": "chunk", "hidden_size": c["d"], "num_hidden_layers": c["L"], "head_dim": c["K"],
         "num_heads": c["H"], "num_v_heads": None if c["Hv"] == c["H"] else c["Hv"], "expand_v": c["V"] / c["K"],
         "conv_size": c["Kc"], "use_gate": True, "use_short_conv": True, "allow_neg_eigval": c["neg"],
         "hidden_ratio": 4, "intermediate_size": c["F"], "hidden_act": "swish", "norm_eps": c["eps"],
         "max_position_embeddings": 2048, "vocab_size": c["vocab"], "tie_word_embeddings": c["tied"],
         "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None, "use_cache": True, "initializer_range": 0.02,
         "fuse_norm": True, "fuse_swiglu": True, "fuse_cross_entropy": True, "fuse_linear_cross_entropy": False,
         "use_l2warp": False, "torch_dtype": "bfloat16", "transformers_version": "4.53.0"}
    j.update(extra)
    return j


def main():
    # 1. The released head sizes: head_dim 256, expand_v 2 (values 512), one head, 2 layers, bf16,
    #    vocab 131 (not a multiple of 8), untied head.
    c = dict(d=64, L=2, H=1, Hv=1, K=256, V=512, Kc=4, F=96, vocab=131, eps=1e-6, tied=False, neg=False)
    make_case("gated_deltanet_hf_bf16", 81, c, config(c), "BF16")
    # 2. A small head (16 keys, 24 values), value heads sharing key heads (num_v_heads 4 over num_heads 2),
    #    allow_neg_eigval, a tied head, conv width 3, norm_eps 1e-5, f32.
    c = dict(d=48, L=3, H=2, Hv=4, K=16, V=24, Kc=3, F=80, vocab=77, eps=1e-5, tied=True, neg=True)
    make_case("gated_deltanet_gva_tied", 82, c, config(c, torch_dtype="float32"), "F32")


if __name__ == "__main__":
    main()
