#!/usr/bin/python3
"""Make rill's RWKV-6 golden fixtures: random-weight checkpoints in the Hugging Face layout
(`RWKV/v6-Finch-*-HF`, Rwkv6ForCausalLM) and in BlinkDL's original naming (as safetensors), and the
outputs of an independent float64 reference.

The reference never carries a state from token to token. Per head, the output is the parallel
(attention-like) form of the recurrence:
    y_t = sum_{s<t} (r_t * prod_{s<tau<t} w_tau) . k_s  v_s  +  (r_t * u) . k_t  v_t
with the decay products taken as exp of differences of cumulative log-decays (log w = -exp(.), in
double), and the final state S[i][j] = sum_s v_s[i] k_s[j] prod_{s<tau<=T-1} w_tau[j] in the same way.

    /usr/bin/python3 tests/golden/make_golden_rwkv6.py

Outputs per case: model.safetensors (+ config.json), tokens.txt, logits.npy [T, V], state_att.npy
[L, C], state_ffn.npy [L, C], state_wkv.npy [L, H, N, N] (value index first, then key).
"""
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
from st_io import write_safetensors, write_npy  # noqa: E402
from make_golden_rwkv7 import world_vocab, greedy_tokenize  # noqa: E402


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def wkv_parallel(r, logw, k, v, u):
    """One head over the whole sequence: r, logw, k, v [T, N], u [N]. Returns y [T, N], S_T [N, N]."""
    T, N = r.shape
    cum = np.cumsum(logw, 0)  # cum[t] = sum_{tau<=t} log w_tau
    y = np.zeros((T, N))
    for t in range(T):
        for s in range(t):
            decay = np.exp(cum[t - 1] - cum[s])  # prod_{s<tau<t} w_tau, per key channel
            y[t] += np.dot(r[t] * decay, k[s]) * v[s]
        y[t] += np.dot(r[t] * u, k[t]) * v[t]
    S = np.zeros((N, N))
    for s in range(T):
        S += np.outer(v[s], k[s] * np.exp(cum[T - 1] - cum[s]))
    return y, S


def reference(W, c, tokens):
    """W in neutral names (see names()). Returns logits, att shift, ffn shift, wkv."""
    C, L, H, N, eps, gn_eps, Dm = c["C"], c["L"], c["H"], c["N"], c["eps"], c["gn_eps"], c["Dm"]
    T = len(tokens)
    x = layernorm(W["emb"][tokens], W["ln0_w"], W["ln0_b"], eps)
    atts, ffns, wkvs = [], [], []
    for i in range(L):
        p = f"{i}."
        u = layernorm(x, W[p + "ln1_w"], W[p + "ln1_b"], eps)
        dx = np.concatenate([np.zeros((1, C)), u[:-1]], 0) - u
        xxx = u + dx * W[p + "maa_x"].reshape(C)
        lo = np.tanh(xxx @ W[p + "maa_w1"])  # [T, 5 Dm]
        w2 = W[p + "maa_w2"]  # [5, Dm, C]
        mixes = [u + dx * (W[p + "maa_" + n].reshape(C) + lo[:, j * Dm:(j + 1) * Dm] @ w2[j])
                 for j, n in enumerate("wkvrg")]
        xw, xk, xv, xr, xg = mixes
        r = xr @ W[p + "Wr"].T
        k = xk @ W[p + "Wk"].T
        v = xv @ W[p + "Wv"].T
        g = xg @ W[p + "Wg"].T
        g = g * sigmoid(g)
        logw = -np.exp(W[p + "decay"].reshape(C) + np.tanh(xw @ W[p + "decay_w1"]) @ W[p + "decay_w2"])
        y = np.zeros((T, C))
        S_heads = []
        uu = W[p + "faaaa"].reshape(H, N)
        for h in range(H):
            sl = slice(h * N, (h + 1) * N)
            yh, S = wkv_parallel(r[:, sl], logw[:, sl], k[:, sl], v[:, sl], uu[h])
            y[:, sl] = yh
            S_heads.append(S)
        yg = y.reshape(T, H, N)
        mu = yg.mean(-1, keepdims=True)
        var = ((yg - mu) ** 2).mean(-1, keepdims=True)
        y = ((yg - mu) / np.sqrt(var + gn_eps)).reshape(T, C) * W[p + "lnx_w"] + W[p + "lnx_b"]
        x = x + (y * g) @ W[p + "Wo"].T
        u2 = layernorm(x, W[p + "ln2_w"], W[p + "ln2_b"], eps)
        dx2 = np.concatenate([np.zeros((1, C)), u2[:-1]], 0) - u2
        xk2 = u2 + dx2 * W[p + "ffn_maa_k"].reshape(C)
        xr2 = u2 + dx2 * W[p + "ffn_maa_r"].reshape(C)
        ffn = np.square(np.maximum(xk2 @ W[p + "ffn_key"].T, 0)) @ W[p + "ffn_value"].T
        x = x + sigmoid(xr2 @ W[p + "ffn_r"].T) * ffn
        atts.append(u[-1])
        ffns.append(u2[-1])
        wkvs.append(np.stack(S_heads))
    logits = layernorm(x, W["lnout_w"], W["lnout_b"], eps) @ W["head"].T
    return logits, np.stack(atts), np.stack(ffns), np.stack(wkvs)


def names(c, hf):
    """Neutral name -> checkpoint name, in the HF or BlinkDL layout."""
    blk = (lambda i, s: f"rwkv.blocks.{i}." + s.replace("att.", "attention.").replace("ffn.", "feed_forward.")) if hf \
        else (lambda i, s: f"blocks.{i}." + s)
    top = (lambda s: "rwkv." + s) if hf else (lambda s: s)
    out = {"emb": "rwkv.embeddings.weight" if hf else "emb.weight",
           "ln0_w": blk(0, "pre_ln.weight" if hf else "ln0.weight"), "ln0_b": blk(0, "pre_ln.bias" if hf else "ln0.bias"),
           "lnout_w": top("ln_out.weight"), "lnout_b": top("ln_out.bias"), "head": "head.weight"}
    for i in range(c["L"]):
        p = f"{i}."
        for n in ("ln1", "ln2"):
            out[p + n + "_w"], out[p + n + "_b"] = blk(i, n + ".weight"), blk(i, n + ".bias")
        for n in "xwkvrg":
            out[p + "maa_" + n] = blk(i, "att.time_maa_" + n)
        out[p + "maa_w1"], out[p + "maa_w2"] = blk(i, "att.time_maa_w1"), blk(i, "att.time_maa_w2")
        out[p + "decay"], out[p + "faaaa"] = blk(i, "att.time_decay"), blk(i, "att.time_faaaa")
        out[p + "decay_w1"], out[p + "decay_w2"] = blk(i, "att.time_decay_w1"), blk(i, "att.time_decay_w2")
        for n, m in (("receptance", "Wr"), ("key", "Wk"), ("value", "Wv"), ("gate", "Wg"), ("output", "Wo")):
            out[p + m] = blk(i, f"att.{n}.weight")
        out[p + "lnx_w"], out[p + "lnx_b"] = blk(i, "att.ln_x.weight"), blk(i, "att.ln_x.bias")
        out[p + "ffn_maa_k"], out[p + "ffn_maa_r"] = blk(i, "ffn.time_maa_k"), blk(i, "ffn.time_maa_r")
        for n, m in (("key", "ffn_key"), ("value", "ffn_value"), ("receptance", "ffn_r")):
            out[p + m] = blk(i, f"ffn.{n}.weight")
    return out


def random_weights(rng, c):
    """Neutral names, in the checkpoints' own shapes (x @ W for the LoRAs, nn.Linear for the rest)."""
    C, L, H, N, F, V, Dm, Dd = c["C"], c["L"], c["H"], c["N"], c["F"], c["V"], c["Dm"], c["Dd"]
    W = {"emb": rng.normal(0, 1, (V, C)), "ln0_w": rng.uniform(0.5, 1.5, C), "ln0_b": rng.normal(0, 0.1, C),
         "lnout_w": rng.uniform(0.5, 1.5, C), "lnout_b": rng.normal(0, 0.1, C), "head": rng.normal(0, C ** -0.5, (V, C))}
    for i in range(L):
        p = f"{i}."
        for n in ("ln1", "ln2", "lnx"):
            W[p + n + "_w"] = rng.uniform(0.5, 1.5, C)
            W[p + n + "_b"] = rng.normal(0, 0.1, C)
        for n in "xwkvrg":
            W[p + "maa_" + n] = rng.uniform(0, 1, (1, 1, C))
        W[p + "maa_w1"] = rng.normal(0, C ** -0.5, (C, 5 * Dm))
        W[p + "maa_w2"] = rng.normal(0, 0.3 * Dm ** -0.5, (5, Dm, C))
        # Decays as trained models have them, exp(-exp(-6 .. 0)): from 0.37 to 0.9975.
        W[p + "decay"] = rng.uniform(-6, 0, (1, 1, C))
        W[p + "decay_w1"] = rng.normal(0, C ** -0.5, (C, Dd))
        W[p + "decay_w2"] = rng.normal(0, 0.5 * Dd ** -0.5, (Dd, C))
        W[p + "faaaa"] = rng.normal(0, 0.5, (H, N))
        for n in ("Wr", "Wk", "Wv", "Wg", "Wo"):
            W[p + n] = rng.normal(0, C ** -0.5, (C, C))
        W[p + "ffn_maa_k"] = rng.uniform(0, 1, (1, 1, C))
        W[p + "ffn_maa_r"] = rng.uniform(0, 1, (1, 1, C))
        W[p + "ffn_key"] = rng.normal(0, C ** -0.5, (F, C))
        W[p + "ffn_value"] = rng.normal(0, F ** -0.5, (C, F))
        W[p + "ffn_r"] = rng.normal(0, C ** -0.5, (C, C))
    return W


def make_case(name, seed, c, hf, config_json, dtype, T=64, with_vocab=False):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(seed)
    W = random_weights(rng, c)
    nm = names(c, hf)
    stored = write_safetensors(os.path.join(out, "model.safetensors"), {nm[k]: v for k, v in W.items()}, dtype)
    back = {k: stored[nm[k]] for k in W}  # the reference reads the values as stored (rounded)
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
    print(f"{name}: V={c['V']} C={c['C']} H={c['H']} N={c['N']} L={c['L']} T={T} max|logit|={np.abs(logits).max():.3f} "
          f"max|wkv|={np.abs(wkv).max():.3f}")


def main():
    # 1. HF layout, head size 64 as released (2 heads), vocab 131 (not a multiple of 8), LoRA ranks 8 (mix)
    #    and 16 (decay), head_size_divisor 6 (GroupNorm eps 36e-5, so the divisor is read), world vocab.
    c = dict(C=128, L=2, H=2, N=64, F=448, V=131, Dm=8, Dd=16, eps=1e-5, gn_eps=1e-5 * 36)
    make_case("rwkv6_hf_world", 61, c, True, {
        "model_type": "rwkv6", "architectures": ["Rwkv6ForCausalLM"], "attention_hidden_size": 128,
        "head_size": 64, "head_size_divisor": 6, "hidden_size": 128, "intermediate_size": 448,
        "layer_norm_epsilon": 1e-5, "num_hidden_layers": 2, "rescale_every": 6, "tie_word_embeddings": False,
        "use_cache": True, "vocab_size": 131, "bos_token_id": 0, "eos_token_id": 0,
        "torch_dtype": "float32", "transformers_version": "4.34.0"}, "F32", with_vocab=True)
    # 2. BlinkDL naming as safetensors (no config.json: shapes decide), head size 16 (3 heads), 3 layers,
    #    bf16; GroupNorm eps 64e-5, as in the authors' code.
    c = dict(C=48, L=3, H=3, N=16, F=160, V=50, Dm=4, Dd=8, eps=1e-5, gn_eps=64e-5)
    make_case("rwkv6_blink_bf16", 62, c, False, None, "BF16")


if __name__ == "__main__":
    main()
