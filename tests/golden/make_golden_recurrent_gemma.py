#!/usr/bin/python3
"""Make rill's RecurrentGemma (Griffin) golden fixtures: random-weight checkpoints in the Hugging Face
layout (RecurrentGemmaForCausalLM), and the outputs of an independent float64 reference over the whole
sequence.

The reference never carries a state from token to token and has no ring buffer:
  - attention is computed for all positions at once with the causal-and-window mask
    (key k is visible from query q when q - window < k <= q), RoPE at absolute positions;
  - the RG-LRU is the explicit sum h_t = sum_{s<=t} (prod_{s<r<=t} a_r) u_s;
  - the depthwise conv runs over the zero-padded sequence.
Sequences are several windows long, so rill's ring buffer wraps several times.

    /usr/bin/python3 tests/golden/make_golden_recurrent_gemma.py

The tied case also carries a SentencePiece tokenizer.model (BPE with byte fallback, Gemma's special ids
and normalization settings) trained here with Debian's `spm_train` on data/tinyshakespeare.txt, and the
ids Debian's `spm_encode` gives for a held-out line (tokenizer_text.txt -> tokenizer_ids.txt).

Outputs per case: config.json, model.safetensors, tokens.txt, logits.npy [T, V], and the final state:
state_position.npy [1], state_conv.npy [L_rec, K-1, lru], state_rg_lru.npy [L_rec, lru],
state_k_ring.npy / state_v_ring.npy [L_att, window, kv_heads * head_dim] (slot = position % window).
"""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
from st_io import write_safetensors, write_npy, f32_to_bf16_bits, bf16_bits_to_f32  # noqa: E402
from ref_common import softplus, causal_conv  # noqa: E402


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gemma_rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * (1 + w)


def rope(x, pos, R, theta):
    """x [T, heads, D]: rotate-half RoPE on the first R channels of each head at positions pos [T]."""
    half = R // 2
    inv = 1.0 / theta ** (np.arange(0, R, 2, dtype=np.float64) / R)  # [half]
    f = pos[:, None].astype(np.float64) * inv[None, :]  # [T, half]
    cos, sin = np.cos(f)[:, None, :], np.sin(f)[:, None, :]
    out = x.copy()
    a, b = x[..., :half], x[..., half:R]
    out[..., :half] = a * cos - b * sin
    out[..., half:R] = b * cos + a * sin
    return out


def rg_lru(x, gx, ga, lam):
    """x, gx, ga [T, W] (gate logits with biases); lam [W] the recurrent_param. Whole sequence."""
    T, W = x.shape
    log_a = -8.0 * sigmoid(ga) * softplus(lam)  # [T, W]
    a = np.exp(log_a)
    mult = np.sqrt(1 - np.exp(2 * log_a))
    mult[0] = 1.0  # reset at position 0
    u = x * sigmoid(gx) * mult
    cum = np.concatenate([np.zeros((1, W)), np.cumsum(log_a, 0)], 0)  # cum[t] = sum_{r<t} log a_r
    y = np.zeros((T, W))
    for t in range(T):
        # prod_{s<r<=t} a_r = exp(cum[t+1] - cum[s+1])
        decay = np.exp(cum[t + 1] - cum[1:t + 2])  # [t+1, W]
        y[t] = (decay * u[: t + 1]).sum(0)
    return y


def reference(W, c, tokens):
    d, H, KV, D, window = c["d"], c["H"], c["KV"], c["D"], c["window"]
    T = len(tokens)
    pos = np.arange(T)
    eps = c["eps"]
    norm_scale = float(bf16_bits_to_f32(f32_to_bf16_bits(np.array([math.sqrt(d)], np.float32)))[0])
    x = W["model.embed_tokens.weight"][tokens] * (norm_scale if c["scale_emb"] else 1.0)
    st = {"conv": [], "rg_lru": [], "k_ring": [], "v_ring": []}
    for i in range(c["L"]):
        p = f"model.layers.{i}."
        tb = p + "temporal_block."
        u = gemma_rmsnorm(x, W[p + "temporal_pre_norm.weight"], eps)
        if c["pattern"][i % len(c["pattern"])] == "attention":
            def proj(n):
                y = u @ W[tb + n + "_proj.weight"].T
                return y + W[tb + n + "_proj.bias"] if c["attn_bias"] else y
            q = rope(proj("q").reshape(T, H, D), pos, c["R"], c["theta"])
            k = rope(proj("k").reshape(T, KV, D), pos, c["R"], c["theta"])
            v = proj("v").reshape(T, KV, D)
            qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
            visible = (ki <= qi) & (ki > qi - window)
            out = np.zeros((T, H, D))
            for h in range(H):
                g = h // (H // KV)
                s = q[:, h] @ k[:, g].T / math.sqrt(D)
                s = np.where(visible, s, -np.inf)
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, h] = (s / s.sum(-1, keepdims=True)) @ v[:, g]
            y = out.reshape(T, H * D) @ W[tb + "o_proj.weight"].T + W[tb + "o_proj.bias"]
            ring_k, ring_v = np.zeros((window, KV * D)), np.zeros((window, KV * D))
            for t in range(max(0, T - window), T):
                ring_k[t % window], ring_v[t % window] = k[t].reshape(-1), v[t].reshape(-1)
            st["k_ring"].append(ring_k)
            st["v_ring"].append(ring_v)
        else:
            yb = gelu_tanh(u @ W[tb + "linear_y.weight"].T + W[tb + "linear_y.bias"])
            xb = u @ W[tb + "linear_x.weight"].T + W[tb + "linear_x.bias"]
            cw = W[tb + "conv_1d.weight"][:, 0, :]  # [lru, K]
            xc, hist = causal_conv(xb, cw, W[tb + "conv_1d.bias"])
            Hh, bw = c["H"], c["lru"] // c["H"]
            xr = xc.reshape(T, Hh, bw)
            gx = np.einsum("thi,hio->tho", xr, W[tb + "rg_lru.input_gate_weight"]) + W[tb + "rg_lru.input_gate_bias"]
            ga = np.einsum("thi,hio->tho", xr, W[tb + "rg_lru.recurrent_gate_weight"]) + \
                W[tb + "rg_lru.recurrent_gate_bias"]
            h = rg_lru(xc, gx.reshape(T, -1), ga.reshape(T, -1), W[tb + "rg_lru.recurrent_param"])
            y = (h * yb) @ W[tb + "linear_out.weight"].T + W[tb + "linear_out.bias"]
            st["conv"].append(hist)
            st["rg_lru"].append(h[-1])
        x = x + y
        u2 = gemma_rmsnorm(x, W[p + "channel_pre_norm.weight"], eps)
        mb = p + "mlp_block."
        g = gelu_tanh(u2 @ W[mb + "gate_proj.weight"].T + W[mb + "gate_proj.bias"])
        up = u2 @ W[mb + "up_proj.weight"].T + W[mb + "up_proj.bias"]
        x = x + (g * up) @ W[mb + "down_proj.weight"].T + W[mb + "down_proj.bias"]
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    logits = gemma_rmsnorm(x, W["model.final_norm.weight"], eps) @ head.T
    if c["cap"]:
        logits = c["cap"] * np.tanh(logits / c["cap"])
    return logits, st


def random_weights(rng, c):
    d, L, V, lru, I, H, KV, D, K = c["d"], c["L"], c["V"], c["lru"], c["I"], c["H"], c["KV"], c["D"], c["K"]
    F, bw = I // 2, lru // H
    W = {"model.embed_tokens.weight": rng.normal(0, 1, (V, d)) * c["emb_std"],
         "model.final_norm.weight": rng.normal(0, 0.2, d)}
    if not c["tied"]:
        W["lm_head.weight"] = rng.normal(0, c["head_std"], (V, d))
    for i in range(L):
        p = f"model.layers.{i}."
        tb, mb = p + "temporal_block.", p + "mlp_block."
        W[p + "temporal_pre_norm.weight"] = rng.normal(0, 0.2, d)
        W[p + "channel_pre_norm.weight"] = rng.normal(0, 0.2, d)
        W[mb + "gate_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
        W[mb + "gate_proj.bias"] = rng.normal(0, 0.1, F)
        W[mb + "up_proj.weight"] = rng.normal(0, d ** -0.5, (F, d))
        W[mb + "up_proj.bias"] = rng.normal(0, 0.1, F)
        W[mb + "down_proj.weight"] = rng.normal(0, F ** -0.5, (d, F))
        W[mb + "down_proj.bias"] = rng.normal(0, 0.1, d)
        if c["pattern"][i % len(c["pattern"])] == "attention":
            for n, rows in (("q", H * D), ("k", KV * D), ("v", KV * D)):
                W[tb + n + "_proj.weight"] = rng.normal(0, d ** -0.5, (rows, d)) * (2.0 if n == "q" else 1.0)
                if c["attn_bias"]:
                    W[tb + n + "_proj.bias"] = rng.normal(0, 0.2, rows)
            W[tb + "o_proj.weight"] = rng.normal(0, (H * D) ** -0.5, (d, H * D))
            W[tb + "o_proj.bias"] = rng.normal(0, 0.1, d)
        else:
            W[tb + "linear_y.weight"] = rng.normal(0, d ** -0.5, (lru, d))
            W[tb + "linear_y.bias"] = rng.normal(0, 0.1, lru)
            W[tb + "linear_x.weight"] = rng.normal(0, d ** -0.5, (lru, d))
            W[tb + "linear_x.bias"] = rng.normal(0, 0.1, lru)
            W[tb + "linear_out.weight"] = rng.normal(0, lru ** -0.5, (d, lru))
            W[tb + "linear_out.bias"] = rng.normal(0, 0.1, d)
            W[tb + "conv_1d.weight"] = rng.normal(0, K ** -0.5, (lru, 1, K))
            W[tb + "conv_1d.bias"] = rng.normal(0, 0.1, lru)
            W[tb + "rg_lru.input_gate_weight"] = rng.normal(0, bw ** -0.5, (H, bw, bw))
            W[tb + "rg_lru.input_gate_bias"] = rng.normal(0, 0.3, (H, bw))
            W[tb + "rg_lru.recurrent_gate_weight"] = rng.normal(0, bw ** -0.5, (H, bw, bw))
            W[tb + "rg_lru.recurrent_gate_bias"] = rng.normal(0, 0.3, (H, bw))
            # transformers' init: a^c in [0.9, 0.999] at sigmoid = 1, widened to faster decays
            a2 = rng.uniform(0.5 ** 2, 0.999 ** 2, lru)
            W[tb + "rg_lru.recurrent_param"] = np.log(np.exp(-0.5 * np.log(a2)) - 1)
    return W


def config_json(c):
    cfg = {"architectures": ["RecurrentGemmaForCausalLM"], "model_type": "recurrent_gemma",
           "num_hidden_layers": c["L"], "vocab_size": c["V"], "hidden_size": c["d"], "intermediate_size": c["I"],
           "num_attention_heads": c["H"], "num_key_value_heads": c["KV"], "head_dim": c["D"], "lru_width": c["lru"],
           "attention_window_size": c["window"], "conv1d_width": c["K"],
           "logits_soft_cap": c["cap"] if c["cap"] else None, "rms_norm_eps": c["eps"],
           "hidden_activation": "gelu_pytorch_tanh", "partial_rotary_factor": c["prf"], "rope_theta": c["theta"],
           "block_types": c["pattern"], "attention_bias": c["attn_bias"],
           "embeddings_scale_by_sqrt_dim": c["scale_emb"], "tie_word_embeddings": c["tied"],
           "final_w_init_variance_scale": 2.0 / c["L"], "w_init_variance_scale": 0.01, "bos_token_id": 2,
           "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "float32", "transformers_version": "4.40.0"}
    return cfg


CASES = {
    # lru_width != hidden_size, odd-sized blocks, 3 heads of 20 (RoPE on 10), one key/value head, an untied
    # head with large logits so the soft cap bends them; window 16 over 100 tokens.
    "recurrent_gemma_awkward": dict(d=60, L=6, V=97, lru=45, I=74, H=3, KV=1, D=20, K=4, window=16, prf=0.5,
                                    theta=10000.0, eps=1e-6, cap=30.0, scale_emb=True, tied=False,
                                    attn_bias=False, pattern=["recurrent", "recurrent", "attention"], T=100,
                                    emb_std=0.05, head_std=3.0, dtype="F32", seed=5),
    # Attention first, two key/value heads over four query heads, q/k/v biases, a tied head, no soft cap,
    # no embedding scale, conv width 3, window 8 over 50 tokens, a bf16 checkpoint.
    "recurrent_gemma_tied_bf16": dict(d=64, L=4, V=512, lru=64, I=96, H=4, KV=2, D=16, K=3, window=8, prf=0.25,
                                      theta=500.0, eps=1e-5, cap=0.0, scale_emb=False, tied=True, attn_bias=True,
                                      pattern=["attention", "recurrent"], T=50, emb_std=0.4, head_std=0.0,
                                      dtype="BF16", seed=6, spm=True),
}

# Held out from training (the play's text is the training data): plain words, punctuation, digits,
# and characters the vocabulary lacks, which fall back to bytes.
SPM_TEXT = "Wherefore art thou, 2026's robot? Caf\u00e9 na\u00efve \u2014 \u00fcber \U0001F600 done."


def make_spm(out, V):
    repo = os.path.join(HERE, "..", "..")
    prefix = os.path.join(out, "tokenizer")
    subprocess.run(["spm_train", "--input=" + os.path.join(repo, "data", "tinyshakespeare.txt"),
                    "--model_prefix=" + prefix, f"--vocab_size={V}", "--model_type=bpe", "--byte_fallback=true",
                    "--character_coverage=1.0", "--add_dummy_prefix=false", "--normalization_rule_name=identity",
                    "--remove_extra_whitespaces=false", "--pad_id=0", "--eos_id=1", "--bos_id=2", "--unk_id=3",
                    "--num_threads=1", "--minloglevel=2"], check=True, stdout=subprocess.DEVNULL)
    os.remove(prefix + ".vocab")
    with open(os.path.join(out, "tokenizer_text.txt"), "w", encoding="utf-8") as f:
        f.write(SPM_TEXT)
    ids = subprocess.run(["spm_encode", "--model=" + prefix + ".model", "--output_format=id"], input=SPM_TEXT.encode(),
                         check=True, capture_output=True).stdout.decode().split()
    with open(os.path.join(out, "tokenizer_ids.txt"), "w") as f:
        f.write(",".join(ids) + "\n")


def make_case(name, c):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(c["seed"])
    c = dict(c, R=int(c["D"] * c["prf"]))
    W = random_weights(rng, c)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), W, dtype=c["dtype"])
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json(c), f, indent=1)
    tokens = rng.integers(0, c["V"], c["T"])
    logits, st = reference(stored, c, tokens)
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(int(t)) for t in tokens) + "\n")
    write_npy(os.path.join(out, "logits.npy"), logits.astype(np.float32))
    write_npy(os.path.join(out, "state_position.npy"), np.array([c["T"]], np.float32))
    if c.get("spm"):
        make_spm(out, c["V"])
    for k, v in st.items():
        write_npy(os.path.join(out, f"state_{k}.npy"), np.stack(v).astype(np.float32))
    print(f"{name}: T={c['T']} V={c['V']} max|logit|={np.abs(logits).max():.3f}")


if __name__ == "__main__":
    for n, c in CASES.items():
        make_case(n, c)
