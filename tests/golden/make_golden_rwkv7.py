#!/usr/bin/python3
"""Make rill's RWKV-7 golden fixtures: random-weight checkpoints in the flash-linear-attention Hugging Face
layout (`rwkv7-*-world`) and in BlinkDL's original naming (as safetensors), outputs of an independent
float64 reference, and a small vocabulary in the RWKV "world" format.

The reference never carries a state from token to token. Per head, with transition matrices
M_t = diag(w_t) + a_t b_t^T (a = -kk, b = kk * a), the state is S_t = sum_{s<=t} v_s k_s^T M_{s+1} ... M_t,
so y_t = S_t r_t is computed from explicit products of transition matrices over the whole sequence.

    /usr/bin/python3 tests/golden/make_golden_rwkv7.py

Outputs per case: checkpoint files, tokens.txt, logits.npy [T, V], state_att.npy [L, C] (token-shift of
the attention), state_ffn.npy [L, C], state_wkv.npy [L, H, N, N] (value index first, then key).
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


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def wkv_parallel(r, w, k, v, a, b):
    """Per head over the whole sequence: r, w, k, v, a, b [T, N]. Returns y [T, N] and S_T [N, N]."""
    T, N = r.shape
    M = [np.diag(w[t]) + np.outer(a[t], b[t]) for t in range(T)]
    y = np.zeros((T, N))
    S_final = None
    for t in range(T):
        S = np.zeros((N, N))
        P = np.eye(N)  # M_{s+1} ... M_t
        for s in range(t, -1, -1):
            S += np.outer(v[s], k[s]) @ P
            P = M[s] @ P
        y[t] = S @ r[t]
        S_final = S
    return y, S_final


def reference(W, c, tokens):
    """W in rill-neutral names (see to_fla / to_blink). Returns logits, att shift, ffn shift, wkv."""
    C, L, H, N, eps, gn_eps = c["C"], c["L"], c["H"], c["N"], c["eps"], c["gn_eps"]
    T = len(tokens)
    x = layernorm(W["emb"][tokens], W["ln0_w"], W["ln0_b"], eps)
    atts, ffns, wkvs = [], [], []
    v_first = None
    for i in range(L):
        p = f"{i}."
        u = layernorm(x, W[p + "ln1_w"], W[p + "ln1_b"], eps)
        prev = np.concatenate([np.zeros((1, C)), u[:-1]], 0)
        dx = prev - u
        xr, xw, xk, xv, xa, xg = (u + dx * W[p + "x_" + n] for n in "rwkvag")
        r = xr @ W[p + "Wr"].T
        k = xk @ W[p + "Wk"].T
        v = xv @ W[p + "Wv"].T
        wl = -math.exp(-0.5) * sigmoid(W[p + "w0"] + np.tanh(xw @ W[p + "w1"]) @ W[p + "w2"])
        w = np.exp(wl)
        if i == 0:
            v_first = v
        else:
            v = v + (v_first - v) * sigmoid(W[p + "v0"] + (xv @ W[p + "v1"]) @ W[p + "v2"])
        a = sigmoid(W[p + "a0"] + (xa @ W[p + "a1"]) @ W[p + "a2"])
        g = sigmoid(xg @ W[p + "g1"]) @ W[p + "g2"]
        kk = (k * W[p + "k_k"]).reshape(T, H, N)
        kk = kk / np.maximum(np.linalg.norm(kk, axis=-1, keepdims=True), 1e-12)
        kk = kk.reshape(T, C)
        k = k * (1 + (a - 1) * W[p + "k_a"])
        y = np.zeros((T, C))
        S_heads = []
        for h in range(H):
            sl = slice(h * N, (h + 1) * N)
            yh, S = wkv_parallel(r[:, sl], w[:, sl], k[:, sl], v[:, sl], -kk[:, sl], kk[:, sl] * a[:, sl])
            y[:, sl] = yh
            S_heads.append(S)
        yg = y.reshape(T, H, N)
        mu = yg.mean(-1, keepdims=True)
        var = ((yg - mu) ** 2).mean(-1, keepdims=True)
        y = ((yg - mu) / np.sqrt(var + gn_eps)).reshape(T, C) * W[p + "lnx_w"] + W[p + "lnx_b"]
        bonus = (r * k * W[p + "r_k"].reshape(C)).reshape(T, H, N).sum(-1, keepdims=True) * v.reshape(T, H, N)
        y = y + bonus.reshape(T, C)
        x = x + (y * g) @ W[p + "Wo"].T
        u2 = layernorm(x, W[p + "ln2_w"], W[p + "ln2_b"], eps)
        prev2 = np.concatenate([np.zeros((1, C)), u2[:-1]], 0)
        xk2 = u2 + (prev2 - u2) * W[p + "ffn_x_k"]
        x = x + np.square(np.maximum(xk2 @ W[p + "ffn_key"].T, 0)) @ W[p + "ffn_value"].T
        atts.append(u[-1])
        ffns.append(u2[-1])
        wkvs.append(np.stack(S_heads))
    logits = layernorm(x, W["lnout_w"], W["lnout_b"], eps) @ W["head"].T
    return logits, np.stack(atts), np.stack(ffns), np.stack(wkvs)


def random_weights(rng, c):
    C, L, H, N, F, V = c["C"], c["L"], c["H"], c["N"], c["F"], c["V"]
    Dw, Da, Dv, Dg = c["Dw"], c["Da"], c["Dv"], c["Dg"]
    W = {"emb": rng.normal(0, 1, (V, C)), "ln0_w": rng.uniform(0.5, 1.5, C), "ln0_b": rng.normal(0, 0.1, C),
         "lnout_w": rng.uniform(0.5, 1.5, C), "lnout_b": rng.normal(0, 0.1, C), "head": rng.normal(0, C ** -0.5, (V, C))}
    for i in range(L):
        p = f"{i}."
        for n in ("ln1", "ln2", "lnx"):
            W[p + n + "_w"] = rng.uniform(0.5, 1.5, C)
            W[p + n + "_b"] = rng.normal(0, 0.1, C)
        for n in "rwkvag":
            W[p + "x_" + n] = rng.uniform(0, 1, C)
        for n in ("Wr", "Wk", "Wv", "Wo"):
            W[p + n] = rng.normal(0, C ** -0.5, (C, C))
        W[p + "w0"] = rng.normal(0, 1, C)
        W[p + "w1"] = rng.normal(0, C ** -0.5, (C, Dw))  # x @ w1 convention
        W[p + "w2"] = rng.normal(0, Dw ** -0.5, (Dw, C))
        W[p + "a0"] = rng.normal(0, 1, C)
        W[p + "a1"] = rng.normal(0, C ** -0.5, (C, Da))
        W[p + "a2"] = rng.normal(0, Da ** -0.5, (Da, C))
        if i > 0:
            W[p + "v0"] = rng.normal(0, 1, C)
            W[p + "v1"] = rng.normal(0, C ** -0.5, (C, Dv))
            W[p + "v2"] = rng.normal(0, Dv ** -0.5, (Dv, C))
        W[p + "g1"] = rng.normal(0, C ** -0.5, (C, Dg))
        W[p + "g2"] = rng.normal(0, Dg ** -0.5, (Dg, C))
        W[p + "k_k"] = rng.uniform(0.5, 1.5, C)
        W[p + "k_a"] = rng.uniform(0, 1, C)
        W[p + "r_k"] = rng.normal(0, 0.5, (H, N))
        W[p + "ffn_x_k"] = rng.uniform(0, 1, C)
        W[p + "ffn_key"] = rng.normal(0, C ** -0.5, (F, C))
        W[p + "ffn_value"] = rng.normal(0, F ** -0.5, (C, F))
    return W


def to_fla(W, c):
    """fla-hub HF layout (model_type rwkv7)."""
    out = {"model.embeddings.weight": W["emb"], "model.layers.0.pre_norm.weight": W["ln0_w"],
           "model.layers.0.pre_norm.bias": W["ln0_b"], "model.norm.weight": W["lnout_w"],
           "model.norm.bias": W["lnout_b"], "lm_head.weight": W["head"]}
    for i in range(c["L"]):
        p, q = f"model.layers.{i}.", f"{i}."
        out[p + "attn_norm.weight"], out[p + "attn_norm.bias"] = W[q + "ln1_w"], W[q + "ln1_b"]
        out[p + "ffn_norm.weight"], out[p + "ffn_norm.bias"] = W[q + "ln2_w"], W[q + "ln2_b"]
        for n in "rwkvag":
            out[p + "attn.x_" + n] = W[q + "x_" + n].reshape(1, 1, -1)
        for n, m in (("r", "Wr"), ("k", "Wk"), ("v", "Wv"), ("o", "Wo")):
            out[p + f"attn.{n}_proj.weight"] = W[q + m]
        for n in ("w", "a", "v"):
            if q + n + "1" not in W:
                continue
            out[p + f"attn.{n}_lora.lora.0.weight"] = W[q + n + "1"].T
            out[p + f"attn.{n}_lora.lora.2.weight"] = W[q + n + "2"].T
            out[p + f"attn.{n}_lora.lora.2.bias"] = W[q + n + "0"]
        out[p + "attn.g_lora.lora.0.weight"] = W[q + "g1"].T
        out[p + "attn.g_lora.lora.2.weight"] = W[q + "g2"].T
        out[p + "attn.k_k"], out[p + "attn.k_a"], out[p + "attn.r_k"] = W[q + "k_k"], W[q + "k_a"], W[q + "r_k"]
        out[p + "attn.g_norm.weight"], out[p + "attn.g_norm.bias"] = W[q + "lnx_w"], W[q + "lnx_b"]
        out[p + "ffn.x_k"] = W[q + "ffn_x_k"]
        out[p + "ffn.key.weight"], out[p + "ffn.value.weight"] = W[q + "ffn_key"], W[q + "ffn_value"]
    return out


def to_blink(W, c):
    """BlinkDL's original .pth naming, stored as safetensors."""
    out = {"emb.weight": W["emb"], "blocks.0.ln0.weight": W["ln0_w"], "blocks.0.ln0.bias": W["ln0_b"],
           "ln_out.weight": W["lnout_w"], "ln_out.bias": W["lnout_b"], "head.weight": W["head"]}
    for i in range(c["L"]):
        p, q = f"blocks.{i}.", f"{i}."
        out[p + "ln1.weight"], out[p + "ln1.bias"] = W[q + "ln1_w"], W[q + "ln1_b"]
        out[p + "ln2.weight"], out[p + "ln2.bias"] = W[q + "ln2_w"], W[q + "ln2_b"]
        for n in "rwkvag":
            out[p + "att.x_" + n] = W[q + "x_" + n].reshape(1, 1, -1)
        for n, m in (("receptance", "Wr"), ("key", "Wk"), ("value", "Wv"), ("output", "Wo")):
            out[p + f"att.{n}.weight"] = W[q + m]
        for n in ("w", "a", "v"):
            if q + n + "1" not in W:
                continue
            out[p + f"att.{n}0"] = W[q + n + "0"].reshape(1, 1, -1)
            out[p + f"att.{n}1"], out[p + f"att.{n}2"] = W[q + n + "1"], W[q + n + "2"]
        out[p + "att.g1"], out[p + "att.g2"] = W[q + "g1"], W[q + "g2"]
        out[p + "att.k_k"], out[p + "att.k_a"] = W[q + "k_k"].reshape(1, 1, -1), W[q + "k_a"].reshape(1, 1, -1)
        out[p + "att.r_k"] = W[q + "r_k"]
        out[p + "att.ln_x.weight"], out[p + "att.ln_x.bias"] = W[q + "lnx_w"], W[q + "lnx_b"]
        out[p + "ffn.x_k"] = W[q + "ffn_x_k"].reshape(1, 1, -1)
        out[p + "ffn.key.weight"], out[p + "ffn.value.weight"] = W[q + "ffn_key"], W[q + "ffn_value"]
    return out


def world_vocab(path, V):
    """A small vocabulary in the rwkv_vocab_v20230424.txt format: `id repr(token) byte_length`; ids
    1..V-1 (0 is end-of-text). Bytes 0..255 as single tokens (str where printable, else bytes),
    plus multi-byte tokens, a UTF-8 one among them, so longest match matters."""
    lines = []
    multi = ["ROMEO", "ROM", "EO", "\n\n", "the", "th", " the", "é", "\u4e2d\u6587"]
    tokens = [bytes([b]) for b in range(32, 127)] + [bytes([b]) for b in (0, 9, 10, 13, 0xc3, 0xa9, 0xe4, 0xb8, 0xad)]
    tokens += [m.encode() for m in multi]
    assert len(tokens) < V
    for i, t in enumerate(tokens, start=1):
        try:
            s = t.decode("utf-8")
            lit = repr(s) if s.isprintable() or s in ("\n\n", "\n", "\t", "\r") else repr(t)
        except UnicodeDecodeError:
            lit = repr(t)
        lines.append(f"{i} {lit} {len(t)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return {t: i for i, t in enumerate(tokens, start=1)}


def greedy_tokenize(vocab, text):
    """Longest match at each position (what the RWKV TRIE tokenizer does)."""
    out, i, maxlen = [], 0, max(len(t) for t in vocab)
    while i < len(text):
        for n in range(min(maxlen, len(text) - i), 0, -1):
            if text[i:i + n] in vocab:
                out.append(vocab[text[i:i + n]])
                i += n
                break
        else:
            raise ValueError(f"no token for byte {text[i]}")
    return out


def make_case(name, seed, c, layout, config_json, dtype, T=16, with_vocab=False, out=None):
    out = out or os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    W = random_weights(rng, c)
    named = to_fla(W, c) if layout == "fla" else to_blink(W, c)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), named, dtype)
    # Map the stored (rounded) values back to neutral names for the reference.
    back = dict(W)
    inv = {id(v): k for k, v in W.items()}
    for k, v in named.items():
        src = inv.get(id(v))
        if src is None:  # reshaped/transposed views: find by value
            for wk, wv in W.items():
                if wv.size == v.size and np.array_equal(np.asarray(wv).reshape(-1), np.asarray(v).reshape(-1)):
                    src = wk
                    back[wk] = stored[k].reshape(wv.shape)
                    break
                if wv.ndim == 2 and wv.T.shape == v.shape and np.array_equal(wv.T, v):
                    src = wk
                    back[wk] = stored[k].T
                    break
        else:
            back[src] = stored[k]
        assert src is not None, k
    if config_json is not None:
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(config_json, f, indent=1)
    if with_vocab:
        vocab = world_vocab(os.path.join(out, "rwkv_vocab_v20230424.txt"), c["V"])
        text = "ROMEO: the\n\nthe ROM é 中文".encode()
        with open(os.path.join(out, "tokenizer_text.bin"), "wb") as f:
            f.write(text)
        with open(os.path.join(out, "tokenizer_ids.txt"), "w") as f:
            f.write(",".join(str(t) for t in greedy_tokenize(vocab, text)) + "\n")
    tokens = rng.integers(0, c["V"], T)
    logits, att, ffn, wkv = reference(back, c, tokens)
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(int(t)) for t in tokens) + "\n")
    write_npy(os.path.join(out, "logits.npy"), logits)
    write_npy(os.path.join(out, "state_att.npy"), att)
    write_npy(os.path.join(out, "state_ffn.npy"), ffn)
    write_npy(os.path.join(out, "state_wkv.npy"), wkv)
    print(f"{name}: V={c['V']} C={c['C']} H={c['H']} N={c['N']} L={c['L']} max|logit|={np.abs(logits).max():.3f} "
          f"max|wkv|={np.abs(wkv).max():.3f}")


def main():
    # 1. fla layout, head size 64 (2 heads), vocab 131 (not a multiple of 8), LoRA ranks 16/8/12/24,
    #    layer 0 without the value-residual LoRA, norm_eps 2e-5 (GroupNorm eps = 64 * 2e-5), world vocab.
    # GroupNorm eps of the attention output, per layout as its authors compute it: fla's RWKV7Attention
    # uses head_dim * norm_eps; BlinkDL's RWKV-v7 code (rwkv_v7_demo_rnn.py, ln_x) a fixed 64e-5.
    c = dict(C=128, L=2, H=2, N=64, F=512, V=131, Dw=16, Da=8, Dv=12, Dg=24, eps=2e-5, gn_eps=64 * 2e-5)
    make_case("rwkv7_fla_world", 21, c, "fla", {
        "model_type": "rwkv7", "architectures": ["RWKV7ForCausalLM"], "hidden_size": 128, "num_hidden_layers": 2,
        "head_dim": 64, "num_heads": 2, "hidden_ratio": 4.0, "intermediate_size": 512, "decay_low_rank_dim": 16,
        "a_low_rank_dim": 8, "v_low_rank_dim": 12, "gate_low_rank_dim": 24, "norm_eps": 2e-5, "norm_bias": True,
        "norm_first": True, "hidden_act": "sqrelu", "vocab_size": 131, "tie_word_embeddings": False, "attn": None,
        "attn_mode": "chunk", "fuse_norm": True, "fuse_cross_entropy": True, "use_cache": True,
        "initializer_range": 0.006, "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32", "transformers_version": "4.48.0", "value_dim": None}, "F32", with_vocab=True)
    # 2. BlinkDL naming as safetensors (no config.json: shapes decide), head size 16 (3 heads), vocab 50,
    #    3 layers, bf16; GroupNorm eps 64e-5 whatever the head size, as in the authors' code.
    c = dict(C=48, L=3, H=3, N=16, F=192, V=50, Dw=8, Da=8, Dv=4, Dg=16, eps=1e-5, gn_eps=64e-5)  # not 16 * 1e-5
    make_case("rwkv7_blink_bf16", 22, c, "blink", None, "BF16")
    # 3. A tiny world-vocabulary model (fla layout, f16) small enough to seed the loader fuzzer.
    c = dict(C=32, L=2, H=2, N=16, F=64, V=131, Dw=4, Da=4, Dv=4, Dg=4, eps=1e-5, gn_eps=16 * 1e-5)
    make_case("rwkv7_world_tiny", 23, c, "fla", {"model_type": "rwkv7", "hidden_size": 32, "num_hidden_layers": 2,
              "head_dim": 16, "vocab_size": 131}, "F16", with_vocab=True,
              out=os.path.join(HERE, "..", "fuzz", "rwkv7_world_tiny"))


if __name__ == "__main__":
    main()
