#!/usr/bin/python3
"""A random-weight checkpoint for one of the real configs in this folder, in that checkpoint's own
tensor layout and dtype, with its real tokenizer file beside it.

Usage: make_random.py NAME OUT_DIR     (NAME: a folder here, e.g. mamba-130m-hf)

The shapes come from the config (the real 130M / 0.1B sizes); the weights are random with the
scales of the architectures' initialisers, so the model runs and produces finite text, not sense.
"""
import json
import math
import os
import shutil
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, os.path.join(root, "scripts"))
sys.path.insert(0, os.path.join(root, "tests/golden"))
from st_io import write_safetensors, f32_to_bf16_bits  # noqa: E402

name, out = sys.argv[1], sys.argv[2]
text = open(os.path.join(here, name, "config.json")).read()
cfg = json.loads(text)
rng = np.random.default_rng(7)
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "config.json"), "w").write(text)


def normal(std, shape):
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def inv_softplus_dt(n):
    dt = np.exp(rng.uniform(math.log(1e-3), math.log(0.1), n))
    return (dt + np.log(-np.expm1(-dt))).astype(np.float32)


def write_streamed(path, specs):
    """A bf16 safetensors file written one tensor at a time: specs is [(name, shape, make)], make(shape)
    giving float32 values, or None for zeros (left as a hole in a sparse file: no time, no disk)."""
    header, offset = {}, 0
    for n, shape, _ in sorted(specs, key=lambda s: s[0]):
        size = 2 * int(np.prod(shape))
        header[n] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        base = f.tell()
        for n, shape, make in sorted(specs, key=lambda s: s[0]):
            if make is not None:
                f.seek(base + header[n]["data_offsets"][0])
                f.write(f32_to_bf16_bits(make(shape)).tobytes())
        f.truncate(base + offset)
    return offset // 2


def hybrid_checkpoint(name, cfg, out):
    """Granite 4.0-H (model.layers.N.{mamba,self_attn,shared_mlp}) or Nemotron-H (backbone.layers.N.mixer),
    bf16. Weights random with the initialisers' scales; the Nemotron-H 4B shape's matrices are zeros
    (a sparse file: 8.6 GB of random values would cost minutes here), its vectors random."""
    d = cfg["hidden_size"]
    granite = name.startswith("granite")
    zeros = not granite
    mat = (lambda std: (lambda s: normal(std, s))) if not zeros else (lambda std: None)
    ones = lambda s: np.ones(s, np.float32)  # noqa: E731
    S = []
    if granite:
        H, P, G, N, K = cfg["mamba_n_heads"], cfg["mamba_d_head"], cfg["mamba_n_groups"], cfg["mamba_d_state"], cfg["mamba_d_conv"]
        kinds = ["M" if t == "mamba" else "*" for t in cfg["layer_types"]]
        QH, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        D, F, V = cfg.get("head_dim", d // QH), cfg["shared_intermediate_size"], cfg["vocab_size"]
        root, mix, att = "model.", "mamba.", "self_attn."
        S += [("model.embed_tokens.weight", (V, d), mat(0.1)), ("model.norm.weight", (d,), ones)]
    else:
        H, P, G, N, K = cfg["mamba_num_heads"], cfg["mamba_head_dim"], cfg["n_groups"], cfg["ssm_state_size"], cfg["conv_kernel"]
        kinds = list(cfg["hybrid_override_pattern"])
        QH, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        D, F, V = cfg["attention_head_dim"], cfg["intermediate_size"], cfg["vocab_size"]
        root, mix, att = "backbone.", "mixer.", "mixer."
        S += [("backbone.embeddings.weight", (V, d), mat(0.02)), ("backbone.norm_f.weight", (d,), ones),
              ("lm_head.weight", (V, d), mat(d ** -0.5))]
    E = H * P
    for i, k in enumerate(kinds):
        p = f"{root}layers.{i}."
        if granite:
            S += [(p + "input_layernorm.weight", (d,), ones), (p + "post_attention_layernorm.weight", (d,), ones),
                  (p + "shared_mlp.input_linear.weight", (2 * F, d), mat(d ** -0.5)),
                  (p + "shared_mlp.output_linear.weight", (d, F), mat(F ** -0.5))]
        else:
            S += [(p + "norm.weight", (d,), ones)]
        if k == "M":
            m = p + mix
            S += [(m + "in_proj.weight", (2 * E + 2 * G * N + H, d), mat(d ** -0.5)),
                  (m + "conv1d.weight", (E + 2 * G * N, 1, K), lambda s: rng.uniform(-0.6, 0.6, s).astype(np.float32)),
                  (m + "conv1d.bias", (E + 2 * G * N,), lambda s: normal(0.1, s)),
                  (m + "dt_bias", (H,), lambda s: inv_softplus_dt(s[0])),
                  (m + "A_log", (H,), lambda s: np.log(np.arange(1, s[0] + 1, dtype=np.float32))),
                  (m + "D", (H,), ones), (m + "norm.weight", (E,), ones),
                  (m + "out_proj.weight", (d, E), mat(E ** -0.5))]
        elif k == "*":
            a = p + att
            S += [(a + "q_proj.weight", (QH * D, d), mat(d ** -0.5)), (a + "k_proj.weight", (KV * D, d), mat(d ** -0.5)),
                  (a + "v_proj.weight", (KV * D, d), mat(d ** -0.5)), (a + "o_proj.weight", (d, QH * D), mat((QH * D) ** -0.5))]
        else:
            S += [(p + "mixer.up_proj.weight", (F, d), mat(d ** -0.5)), (p + "mixer.down_proj.weight", (d, F), mat(F ** -0.5))]
    n = write_streamed(os.path.join(out, "model.safetensors"), S)
    print(f"{name}: {n / 1e6:.1f} M parameters (BF16{', matrices zero' if zeros else ''}), no tokenizer, in {out}")


W = {}
if name in ("mamba-130m-hf", "mamba-1.4b-hf"):  # transformers MambaForCausalLM, float32, tied (no lm_head.weight)
    d, L, V, N, K = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["state_size"], cfg["conv_kernel"]
    E, R = cfg["intermediate_size"], cfg["time_step_rank"]
    W["backbone.embeddings.weight"] = normal(0.02, (V, d))
    W["backbone.norm_f.weight"] = np.ones(d, np.float32)
    for i in range(L):
        p = f"backbone.layers.{i}."
        W[p + "norm.weight"] = np.ones(d, np.float32)
        W[p + "mixer.in_proj.weight"] = normal(d ** -0.5, (2 * E, d))
        W[p + "mixer.conv1d.weight"] = rng.uniform(-0.5, 0.5, (E, 1, K)).astype(np.float32)
        W[p + "mixer.conv1d.bias"] = normal(0.1, (E,))
        W[p + "mixer.x_proj.weight"] = normal(E ** -0.5, (R + 2 * N, E))
        W[p + "mixer.dt_proj.weight"] = normal(R ** -0.5, (E, R))
        W[p + "mixer.dt_proj.bias"] = inv_softplus_dt(E)
        W[p + "mixer.A_log"] = np.log(np.tile(np.arange(1, N + 1, dtype=np.float32), (E, 1)))
        W[p + "mixer.D"] = np.ones(E, np.float32)
        W[p + "mixer.out_proj.weight"] = normal(E ** -0.5, (d, E))
    dtype, tok = "F32", "gpt-neox-20b-tokenizer.json"
elif name in ("mamba2-130m", "mamba2-130m-hf"):
    if name == "mamba2-130m":  # mamba_ssm MambaLMHeadModel state_dict (lm_head.weight saved too, tied)
        d, L, s = cfg["d_model"], cfg["n_layer"], cfg["ssm_cfg"]
        pad = cfg["pad_vocab_size_multiple"]
        V = (cfg["vocab_size"] + pad - 1) // pad * pad
        N, K, P, G, E = s.get("d_state", 128), s.get("d_conv", 4), s.get("headdim", 64), s.get("ngroups", 1), 2 * d
        emb = "backbone.embedding.weight"
    else:  # transformers Mamba2ForCausalLM, tied (no lm_head.weight)
        d, L, V, N, K = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["state_size"], cfg["conv_kernel"]
        P, G, E = cfg["head_dim"], cfg["n_groups"], cfg["num_heads"] * cfg["head_dim"]
        emb = "backbone.embeddings.weight"
    H = E // P
    W[emb] = normal(0.02, (V, d))
    W["backbone.norm_f.weight"] = np.ones(d, np.float32)
    for i in range(L):
        p = f"backbone.layers.{i}."
        W[p + "norm.weight"] = np.ones(d, np.float32)
        W[p + "mixer.in_proj.weight"] = normal(d ** -0.5, (2 * E + 2 * G * N + H, d))
        W[p + "mixer.conv1d.weight"] = rng.uniform(-0.6, 0.6, (E + 2 * G * N, 1, K)).astype(np.float32)
        W[p + "mixer.conv1d.bias"] = normal(0.1, (E + 2 * G * N,))
        W[p + "mixer.dt_bias"] = inv_softplus_dt(H)
        W[p + "mixer.A_log"] = np.log(rng.uniform(1, 16, H)).astype(np.float32)
        W[p + "mixer.D"] = np.ones(H, np.float32)
        W[p + "mixer.norm.weight"] = np.ones(E, np.float32)
        W[p + "mixer.out_proj.weight"] = normal(E ** -0.5, (d, E))
    if name == "mamba2-130m":
        W["lm_head.weight"] = W[emb]
    dtype, tok = "F32", "gpt-neox-20b-tokenizer.json"
elif name == "rwkv7-0.1B-world":  # flash-linear-attention RWKV7ForCausalLM, bfloat16
    import make_golden_rwkv7 as r7
    C, hd = cfg["hidden_size"], cfg["head_dim"]
    c = dict(C=C, L=cfg["num_hidden_layers"], H=C // hd, N=hd, F=cfg["intermediate_size"], V=cfg["vocab_size"],
             Dw=cfg["decay_low_rank_dim"], Da=cfg["a_low_rank_dim"], Dv=cfg["v_low_rank_dim"],
             Dg=cfg["gate_low_rank_dim"], eps=cfg["norm_eps"])
    W = r7.to_fla(r7.random_weights(rng, c), c)
    dtype, tok = "BF16", "rwkv_vocab_v20230424.txt"
elif name == "rwkv6-world-1.6b-hf":  # HF Rwkv6ForCausalLM (RWKV/v6-Finch-1B6-HF), bfloat16, 1.6 B parameters
    # Written tensor by tensor (write_streamed): the names and shapes of make_golden_rwkv6.names(), the
    # scales of its random_weights() for the embedding, vectors and LoRAs; LoRA ranks 32 (mix) and 64
    # (decay), as the authors use below 4096.
    import make_golden_rwkv6 as r6
    C, N, L, F, V = cfg["hidden_size"], cfg["head_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
    c = dict(C=C, L=L, H=C // N, N=N, F=F, V=V, Dm=32, Dd=64)
    nm = r6.names(c, hf=True)
    uni = lambda lo, hi: (lambda s: rng.uniform(lo, hi, s).astype(np.float32))  # noqa: E731
    gauss = lambda std: (lambda s: normal(std, s))  # noqa: E731
    shapes = {"emb": ((V, C), gauss(1)), "ln0_w": ((C,), uni(0.5, 1.5)), "ln0_b": ((C,), gauss(0.1)),
              "lnout_w": ((C,), uni(0.5, 1.5)), "lnout_b": ((C,), gauss(0.1)), "head": ((V, C), gauss(C ** -0.5))}
    zero = None  # the large matrices: zeros, a hole in the sparse file (random ones cost 40 s to write)
    for i in range(L):
        p = f"{i}."
        for n in ("ln1", "ln2", "lnx"):
            shapes[p + n + "_w"], shapes[p + n + "_b"] = ((C,), uni(0.5, 1.5)), ((C,), gauss(0.1))
        for n in "xwkvrg":
            shapes[p + "maa_" + n] = ((1, 1, C), uni(0, 1))
        shapes[p + "maa_w1"] = ((C, 5 * 32), gauss(C ** -0.5))
        shapes[p + "maa_w2"] = ((5, 32, C), gauss(0.3 * 32 ** -0.5))
        shapes[p + "decay"] = ((1, 1, C), uni(-6, 0))
        shapes[p + "decay_w1"] = ((C, 64), gauss(C ** -0.5))
        shapes[p + "decay_w2"] = ((64, C), gauss(0.5 * 64 ** -0.5))
        shapes[p + "faaaa"] = ((C // N, N), gauss(0.5))
        for n in ("Wr", "Wk", "Wv", "Wg", "Wo", "ffn_r"):
            shapes[p + n] = ((C, C), zero)
        shapes[p + "ffn_maa_k"], shapes[p + "ffn_maa_r"] = ((1, 1, C), uni(0, 1)), ((1, 1, C), uni(0, 1))
        shapes[p + "ffn_key"], shapes[p + "ffn_value"] = ((F, C), zero), ((C, F), zero)
    n_params = write_streamed(os.path.join(out, "model.safetensors"), [(nm[k], s, f) for k, (s, f) in shapes.items()])
    shutil.copyfile(os.path.join(root, "data/tokenizers/rwkv_vocab_v20230424.txt"),
                    os.path.join(out, "rwkv_vocab_v20230424.txt"))
    print(f"{name}: {n_params / 1e6:.1f} M parameters (BF16, large matrices zero) + rwkv_vocab_v20230424.txt in {out}")
    sys.exit(0)
elif name == "gated-deltanet-1.3b":  # fla GatedDeltaNetForCausalLM, bfloat16, 1.4 B parameters
    # Written tensor by tensor; the matrices are zeros (a sparse file, as the Nemotron-H 4B shape's), the
    # vectors random. The MLP width is fla's GatedMLP default for intermediate_size null:
    # 2/3 * hidden_ratio * hidden_size rounded up to a multiple of 256.
    d, L, H, K, Vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_heads"], cfg["head_dim"], cfg["vocab_size"]
    V = int(K * cfg["expand_v"])
    F = int(d * cfg["hidden_ratio"] * 2 / 3)
    F = 256 * ((F + 255) // 256)
    ones = lambda s: np.ones(s, np.float32)  # noqa: E731
    S = [("model.embeddings.weight", (Vocab, d), lambda s: normal(1, s)), ("model.norm.weight", (d,), ones),
         ("lm_head.weight", (Vocab, d), None)]
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        S += [(p + "attn_norm.weight", (d,), ones), (p + "mlp_norm.weight", (d,), ones),
              (a + "A_log", (H,), lambda s: np.log(rng.uniform(1, 16, s)).astype(np.float32)),
              (a + "dt_bias", (H,), lambda s: inv_softplus_dt(s[0])), (a + "o_norm.weight", (V,), ones)]
        for n, rows in (("q", H * K), ("k", H * K), ("v", H * V), ("g", H * V), ("a", H), ("b", H)):
            S.append((a + n + "_proj.weight", (rows, d), None))
        for n, ch in (("q", H * K), ("k", H * K), ("v", H * V)):
            S.append((a + n + "_conv1d.weight", (ch, 1, 4), lambda s: normal(0.5, s)))
        S += [(a + "o_proj.weight", (d, H * V), None), (p + "mlp.gate_proj.weight", (F, d), None),
              (p + "mlp.up_proj.weight", (F, d), None), (p + "mlp.down_proj.weight", (d, F), None)]
    n_params = write_streamed(os.path.join(out, "model.safetensors"), S)
    print(f"{name}: {n_params / 1e6:.1f} M parameters (BF16, matrices zero) in {out}")
    sys.exit(0)
elif name == "retnet-1.3b":  # fla RetNetForCausalLM, bfloat16, 1.3 B parameters: zero matrices, random vectors
    d, L, H, Vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_heads"], cfg["vocab_size"]
    kd, vd = int(d * cfg["expand_k"]), int(d * cfg["expand_v"])
    F = int(d * cfg["hidden_ratio"] * 2 / 3)
    F = 256 * ((F + 255) // 256)  # fla's GatedMLP default for intermediate_size null
    ones = lambda s: np.ones(s, np.float32)  # noqa: E731
    S = [("model.embeddings.weight", (Vocab, d), lambda s: normal(1, s)), ("model.norm.weight", (d,), ones),
         ("lm_head.weight", (Vocab, d), None)]
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        S += [(p + "attn_norm.weight", (d,), ones), (p + "mlp_norm.weight", (d,), ones),
              (a + "g_norm_swish_gate.weight", (vd // H,), ones)]
        S += [(a + n + "_proj.weight", (rows, d), None) for n, rows in (("q", kd), ("k", kd), ("v", vd), ("g", vd))]
        S += [(a + "o_proj.weight", (d, vd), None), (p + "mlp.gate_proj.weight", (F, d), None),
              (p + "mlp.up_proj.weight", (F, d), None), (p + "mlp.down_proj.weight", (d, F), None)]
    n_params = write_streamed(os.path.join(out, "model.safetensors"), S)
    print(f"{name}: {n_params / 1e6:.1f} M parameters (BF16, matrices zero) in {out}")
    sys.exit(0)
elif name == "gla-340m":  # fla GLAForCausalLM, bfloat16, 0.37 B parameters, random weights
    import make_golden_gla as gla
    d, H = cfg["hidden_size"], cfg["num_heads"]
    F = int(d * cfg["hidden_ratio"] * 2 / 3)
    F = 256 * ((F + 255) // 256)  # fla's GatedMLP default for intermediate_size null
    c = dict(d=d, L=cfg["num_hidden_layers"], H=H, K=int(d * cfg["expand_k"]) // H, V=int(d * cfg["expand_v"]) // H,
             R=cfg["gate_low_rank_dim"], F=F, vocab=cfg["vocab_size"], Kc=cfg["conv_size"], conv=cfg["use_short_conv"],
             tied=cfg["tie_word_embeddings"], fuse_norm=cfg["fuse_norm"])
    S = [(k, v.shape, (lambda v: lambda s: v.astype(np.float32))(v)) for k, v in gla.random_weights(rng, c).items()]
    n_params = write_streamed(os.path.join(out, "model.safetensors"), S)
    print(f"{name}: {n_params / 1e6:.1f} M parameters (BF16) in {out}")
    sys.exit(0)
elif name.startswith("granite-4.0-h") or name.startswith("nemotron-h"):
    hybrid_checkpoint(name, cfg, out)  # written tensor by tensor (up to 4 B parameters)
    sys.exit(0)
else:
    sys.exit(f"unknown checkpoint {name}")

write_safetensors(os.path.join(out, "model.safetensors"), W, dtype)
dst = "tokenizer.json" if tok.endswith(".json") else tok
shutil.copyfile(os.path.join(root, "data/tokenizers", tok), os.path.join(out, dst))
print(f"{name}: {sum(v.size for v in W.values()) / 1e6:.1f} M parameters ({dtype}) + {dst} in {out}")
