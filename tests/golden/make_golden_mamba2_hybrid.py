#!/usr/bin/python3
"""Make rill's Mamba-2 / attention hybrid golden fixtures: random-weight checkpoints in the Hugging Face
layouts of Granite 4.0-H (`GraniteMoeHybridForCausalLM`, dense) and Nemotron-H (`NemotronHForCausalLM`),
and the outputs of an independent float64 reference over the whole sequence:

  - Mamba-2 mixers by the chunked SSD algorithm (make_golden_mamba2.ssd_chunked: the quadratic form inside
    each chunk, a scan over chunk states between chunks), never the per-token recurrence;
  - attention as one masked matrix product over all positions (causal mask, grouped-query heads, RoPE at
    absolute positions where the config asks for it);
  - every multiplier as the modeling code applies it (embedding, attention scale, residual, logits).

    /usr/bin/python3 tests/golden/make_golden_mamba2_hybrid.py

Outputs per case: checkpoint files, tokens.txt, logits.npy [T, V], and logits_slide16.npy [T, V]: the
same with attention over the last 16 tokens only (a session loaded with max_context 16 that slides).
"""
import json
import math
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
from st_io import write_safetensors, write_npy  # noqa: E402
from ref_common import softplus, silu, rmsnorm, causal_conv  # noqa: E402
from make_golden_mamba2 import ssd_chunked  # noqa: E402


def mixer(W, p, u, c, norm_groups):
    """Mamba-2 mixer over the whole sequence u [T, d] (Granite: p = ...mamba., Nemotron-H: ...mixer.)."""
    N, H, P, G, Q = (c[k] for k in ("N", "H", "P", "G", "Q"))
    E, T = H * P, u.shape[0]
    zxbcdt = u @ W[p + "in_proj.weight"].T
    z, xBC, dtr = zxbcdt[:, :E], zxbcdt[:, E:2 * E + 2 * G * N], zxbcdt[:, 2 * E + 2 * G * N:]
    conv, _ = causal_conv(xBC, W[p + "conv1d.weight"][:, 0, :], W[p + "conv1d.bias"])
    xbc = silu(conv)
    x, B, C = xbc[:, :E], xbc[:, E:E + G * N], xbc[:, E + G * N:]
    dt = softplus(dtr + W[p + "dt_bias"])
    A = -np.exp(W[p + "A_log"])
    hpg = H // G
    Bh = B.reshape(T, G, N)[:, np.arange(H) // hpg]
    Ch = C.reshape(T, G, N)[:, np.arange(H) // hpg]
    pad = (-T) % Q  # the chunked form wants whole chunks: zero inputs after the end change nothing before it
    X = np.pad(x.reshape(T, H, P) * dt[:, :, None], ((0, pad), (0, 0), (0, 0)))
    Y, _ = ssd_chunked(X, np.pad(dt * A, ((0, pad), (0, 0))), np.pad(Bh, ((0, pad), (0, 0), (0, 0))),
                       np.pad(Ch, ((0, pad), (0, 0), (0, 0))), Q)
    y = Y[:T].reshape(T, E) + np.repeat(W[p + "D"], P) * x
    y = y * silu(z)
    yg = y.reshape(T, norm_groups, E // norm_groups)  # Granite: one group (the whole width); Nemotron-H: n_groups
    yg = yg / np.sqrt((yg * yg).mean(-1, keepdims=True) + c["eps"])
    return (yg.reshape(T, E) * W[p + "norm.weight"]) @ W[p + "out_proj.weight"].T


def rope(x, D):
    """Rotate-half RoPE (theta 10000) over all D channels of x [T, heads, D] at positions 0..T-1."""
    T = x.shape[0]
    inv = 10000.0 ** (-np.arange(0, D, 2) / D)
    f = np.arange(T)[:, None] * inv[None, :]  # [T, D/2]
    cos, sin = np.cos(f)[:, None, :], np.sin(f)[:, None, :]
    a, b = x[..., :D // 2], x[..., D // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)


def attention(W, p, u, c, scale, use_rope, bias, window=None):
    """Grouped-query attention over all positions with a causal mask (and, given a window, only the last
    `window` keys: q - window < k <= q, what a session that slides at max_context = window keeps)."""
    QH, KV, D = c["QH"], c["KV"], c["D"]
    T = u.shape[0]
    lin = lambda w: u @ W[p + w + "_proj.weight"].T + (W[p + w + "_proj.bias"] if bias else 0)  # noqa: E731
    q, k, v = lin("q").reshape(T, QH, D), lin("k").reshape(T, KV, D), lin("v").reshape(T, KV, D)
    if use_rope:
        q, k = rope(q, D), rope(k, D)
    rep = QH // KV
    k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)  # head h uses key/value head h // rep
    s = np.einsum("thd,shd->hts", q, k) * scale
    keep = np.tril(np.ones((T, T), dtype=bool))
    if window:
        keep &= ~np.tril(np.ones((T, T), dtype=bool), -window)
    s = np.where(keep[None], s, -np.inf)
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    o = np.einsum("hts,shd->thd", s, v).reshape(T, QH * D)
    return o @ W[p + "o_proj.weight"].T + (W[p + "o_proj.bias"] if bias else 0)


def granite_reference(W, c, cfg, tokens, window=None):
    h = W["model.embed_tokens.weight"][tokens] * cfg["embedding_multiplier"]
    r, eps = cfg["residual_multiplier"], c["eps"]
    for i, kind in enumerate(cfg["layer_types"]):
        p = f"model.layers.{i}."
        u = rmsnorm(h, W[p + "input_layernorm.weight"], eps)
        if kind == "mamba":
            o = mixer(W, p + "mamba.", u, c, 1)
        else:
            o = attention(W, p + "self_attn.", u, c, cfg["attention_multiplier"],
                          cfg.get("position_embedding_type") == "rope", cfg["attention_bias"], window)
        h = h + o * r
        u = rmsnorm(h, W[p + "post_attention_layernorm.weight"], eps)
        gu = u @ W[p + "shared_mlp.input_linear.weight"].T
        F = gu.shape[1] // 2
        h = h + (silu(gu[:, :F]) * gu[:, F:]) @ W[p + "shared_mlp.output_linear.weight"].T * r
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return rmsnorm(h, W["model.norm.weight"], eps) @ head.T / cfg["logits_scaling"]


def nemotron_reference(W, c, cfg, tokens, window=None):
    h = W["backbone.embeddings.weight"][tokens]
    eps = c["eps"]
    for i, kind in enumerate(cfg["hybrid_override_pattern"]):
        p = f"backbone.layers.{i}."
        u = rmsnorm(h, W[p + "norm.weight"], eps)
        if kind == "M":
            o = mixer(W, p + "mixer.", u, c, c["G"])
        elif kind == "*":
            o = attention(W, p + "mixer.", u, c, c["D"] ** -0.5, False, False, window)
        else:
            o = np.maximum(u @ W[p + "mixer.up_proj.weight"].T, 0) ** 2 @ W[p + "mixer.down_proj.weight"].T
        h = h + o
    head = W.get("lm_head.weight", W["backbone.embeddings.weight"])
    return rmsnorm(h, W["backbone.norm_f.weight"], eps) @ head.T


def random_mixer(rng, W, p, c):
    d, N, K, H, P, G = (c[k] for k in ("d", "N", "K", "H", "P", "G"))
    E = H * P
    W[p + "in_proj.weight"] = rng.normal(0, d ** -0.5, (2 * E + 2 * G * N + H, d))
    W[p + "conv1d.weight"] = rng.uniform(-0.6, 0.6, (E + 2 * G * N, 1, K))
    W[p + "conv1d.bias"] = rng.normal(0, 0.1, E + 2 * G * N)
    dt = np.exp(rng.uniform(math.log(0.01), math.log(0.5), H))
    W[p + "dt_bias"] = dt + np.log(-np.expm1(-dt))
    W[p + "A_log"] = np.log(rng.uniform(1, 16, H))
    W[p + "D"] = rng.uniform(0.5, 1.5, H)
    W[p + "norm.weight"] = rng.uniform(0.5, 1.5, E)
    W[p + "out_proj.weight"] = rng.normal(0, E ** -0.5, (c["d"], E))


def random_attention(rng, W, p, c, bias):
    d, QH, KV, D = c["d"], c["QH"], c["KV"], c["D"]
    for w, rows in (("q", QH * D), ("k", KV * D), ("v", KV * D)):
        W[p + w + "_proj.weight"] = rng.normal(0, d ** -0.5 * 1.5, (rows, d))
        if bias:
            W[p + w + "_proj.bias"] = rng.normal(0, 0.2, rows)
    W[p + "o_proj.weight"] = rng.normal(0, (QH * D) ** -0.5, (d, QH * D))
    if bias:
        W[p + "o_proj.bias"] = rng.normal(0, 0.1, d)


def write_case(name, W, dtype, cfg, tokens, logits):
    out = os.path.join(HERE, name)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(int(t)) for t in tokens) + "\n")
    write_npy(os.path.join(out, "logits.npy"), logits)
    print(f"{name}: T={len(tokens)} V={logits.shape[1]} max|logit|={np.abs(logits).max():.3f}")


def fresh(name):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    return out


def granite_case(name, seed, c, V, T, dtype, extra):
    out = fresh(name)
    rng = np.random.default_rng(seed)
    d, F = c["d"], c["F"]
    cfg = {
        "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "vocab_size": V,
        "hidden_size": d, "intermediate_size": 64, "shared_intermediate_size": F, "num_hidden_layers": 0,
        "num_attention_heads": c["QH"], "num_key_value_heads": c["KV"], "head_dim": c["D"], "hidden_act": "silu",
        "max_position_embeddings": 128, "rms_norm_eps": c["eps"], "tie_word_embeddings": True, "rope_theta": 10000.0,
        "rope_scaling": None, "attention_bias": False, "attention_dropout": 0.0, "embedding_multiplier": 3.0,
        "logits_scaling": 2.5, "residual_multiplier": 0.5, "attention_multiplier": 0.07, "num_local_experts": 0,
        "num_experts_per_tok": 0, "output_router_logits": False, "router_aux_loss_coef": 0.01,
        "position_embedding_type": "nope", "layer_types": [], "mamba_n_heads": c["H"], "mamba_n_groups": c["G"],
        "mamba_d_state": c["N"], "mamba_d_head": c["P"], "mamba_d_conv": c["K"], "mamba_expand": c["H"] * c["P"] // d,
        "mamba_chunk_size": 256, "mamba_conv_bias": True, "mamba_proj_bias": False, "initializer_range": 0.1,
        "use_cache": True, "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    cfg.update(extra)
    cfg["num_hidden_layers"] = len(cfg["layer_types"])
    W = {"model.embed_tokens.weight": rng.normal(0, 0.5, (V, d)), "model.norm.weight": rng.uniform(0.5, 1.5, d)}
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = rng.normal(0, d ** -0.5, (V, d))
    for i, kind in enumerate(cfg["layer_types"]):
        p = f"model.layers.{i}."
        W[p + "input_layernorm.weight"] = rng.uniform(0.5, 1.5, d)
        W[p + "post_attention_layernorm.weight"] = rng.uniform(0.5, 1.5, d)
        if kind == "mamba":
            random_mixer(rng, W, p + "mamba.", c)
        else:
            random_attention(rng, W, p + "self_attn.", c, cfg["attention_bias"])
        W[p + "shared_mlp.input_linear.weight"] = rng.normal(0, d ** -0.5, (2 * F, d))
        W[p + "shared_mlp.output_linear.weight"] = rng.normal(0, F ** -0.5, (d, F))
    stored = write_safetensors(os.path.join(out, "model.safetensors"), W, dtype)
    tokens = rng.integers(0, V, T)
    write_case(name, stored, dtype, cfg, tokens, granite_reference(stored, c, cfg, tokens))
    write_npy(os.path.join(out, "logits_slide16.npy"), granite_reference(stored, c, cfg, tokens, 16))


def nemotron_case(name, seed, c, V, T, dtype, pattern):
    out = fresh(name)
    rng = np.random.default_rng(seed)
    d, F = c["d"], c["F"]
    cfg = {
        "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "vocab_size": V, "hidden_size": d,
        "hybrid_override_pattern": pattern, "num_hidden_layers": len(pattern), "num_attention_heads": c["QH"],
        "num_key_value_heads": c["KV"], "head_dim": c["D"], "max_position_embeddings": 96, "attention_bias": False,
        "attention_dropout": 0.0, "sliding_window": None, "intermediate_size": F, "mlp_hidden_act": "relu2",
        "mlp_bias": False, "use_mamba_kernels": True, "ssm_state_size": c["N"], "mamba_num_heads": c["H"],
        "mamba_head_dim": c["P"], "mamba_hidden_act": "silu", "n_groups": c["G"], "conv_kernel": c["K"], "expand": 2,
        "time_step_min": 0.001, "time_step_max": 0.1, "time_step_floor": 1e-4, "time_step_limit": [0.0, float("inf")],
        "use_conv_bias": True, "use_bias": False, "chunk_size": 128, "layer_norm_epsilon": c["eps"],
        "tie_word_embeddings": False, "residual_in_fp32": False, "rescale_prenorm_residual": True,
        "num_logits_to_keep": 1, "initializer_range": 0.02, "hidden_dropout": 0.0, "use_cache": True,
        "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    W = {"backbone.embeddings.weight": rng.normal(0, 1.0, (V, d)), "backbone.norm_f.weight": rng.uniform(0.5, 1.5, d),
         "lm_head.weight": rng.normal(0, d ** -0.5, (V, d))}
    for i, kind in enumerate(pattern):
        p = f"backbone.layers.{i}."
        W[p + "norm.weight"] = rng.uniform(0.5, 1.5, d)
        if kind == "M":
            random_mixer(rng, W, p + "mixer.", c)
        elif kind == "*":
            random_attention(rng, W, p + "mixer.", c, False)
        else:
            W[p + "mixer.up_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
            W[p + "mixer.down_proj.weight"] = rng.normal(0, F ** -0.5 * 0.5, (d, F))
    stored = write_safetensors(os.path.join(out, "model.safetensors"), W, dtype)
    tokens = rng.integers(0, V, T)
    write_case(name, stored, dtype, cfg, tokens, nemotron_reference(stored, c, cfg, tokens))
    write_npy(os.path.join(out, "logits_slide16.npy"), nemotron_reference(stored, c, cfg, tokens, 16))


def main():
    # 1. Granite 4.0-H, no position embedding: mixers with n_groups 2 normed over the whole width (the
    #    Granite form, unlike Mamba-2's per-group norm), GQA 4 query / 2 key-value heads of 16, every
    #    multiplier away from 1, tied head, f32; 80 tokens = 5 SSD chunks of 16.
    c = dict(d=48, N=16, K=4, H=4, P=24, G=2, QH=4, KV=2, D=16, F=80, eps=1e-5, Q=16)
    granite_case("granite_hybrid_nope", 21, c, 61, 80, "F32",
                 {"layer_types": ["mamba", "attention", "mamba", "attention"]})
    # 2. Granite with RoPE, attention biases, an untied head, bf16 weights, one group, 3 query heads
    #    sharing one key/value head, conv kernel 3; 72 tokens = 4.5 chunks of 16.
    c = dict(d=40, N=8, K=3, H=5, P=16, G=1, QH=3, KV=1, D=24, F=56, eps=1e-6, Q=16)
    granite_case("granite_hybrid_rope_bf16", 22, c, 47, 72, "BF16",
                 {"layer_types": ["attention", "mamba", "mamba"], "position_embedding_type": "rope",
                  "attention_bias": True, "tie_word_embeddings": False, "embedding_multiplier": 1.7,
                  "logits_scaling": 0.8, "residual_multiplier": 0.9, "attention_multiplier": 0.2,
                  "torch_dtype": "bfloat16"})
    # 3. Nemotron-H: M, *, - blocks (squared-ReLU MLP), n_groups 2 with the per-group gated norm, GQA 4/2
    #    heads of 12, untied, bf16; 70 tokens.
    c = dict(d=32, N=8, K=4, H=4, P=16, G=2, QH=4, KV=2, D=12, F=72, eps=1e-5, Q=16)
    nemotron_case("nemotron_h_bf16", 23, c, 50, 70, "BF16", "M-*M-M*-")


if __name__ == "__main__":
    main()
