#!/usr/bin/python3
"""Train rill's demo model: a small byte-level Mamba-1 on Tiny Shakespeare.

Runs on CPU with Debian's python3-torch (use /usr/bin/python3). Writes a Hugging Face
`MambaForCausalLM`-layout checkpoint (config.json, model.safetensors, tokenizer_config.json)
that `rill convert` reads. The last 5% of the text is held out (written beside the checkpoint)
and never trained on.

    apt-get install python3-torch libopenblas0-pthread   # OpenBLAS: 2x faster than reference BLAS
    /usr/bin/python3 examples/demo_model/train_mamba.py --minutes 28

The selective scan here is the plain sequential recurrence in PyTorch (autograd through it);
the C++ runtime is checked against a separate float64 reference in tests/golden/.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from st_io import write_safetensors  # noqa: E402


class Mixer(torch.nn.Module):
    def __init__(s, d, E, N, K, R):
        super().__init__()
        s.E, s.N, s.K, s.R = E, N, K, R
        s.in_proj = torch.nn.Linear(d, 2 * E, bias=False)
        s.conv1d = torch.nn.Conv1d(E, E, K, groups=E, padding=K - 1, bias=True)
        s.x_proj = torch.nn.Linear(E, R + 2 * N, bias=False)
        s.dt_proj = torch.nn.Linear(R, E, bias=True)
        s.out_proj = torch.nn.Linear(E, d, bias=False)
        A = torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)
        s.A_log = torch.nn.Parameter(torch.log(A))
        s.D = torch.nn.Parameter(torch.ones(E))
        # dt init as in mamba_ssm: softplus^-1 of log-uniform dt in [1e-3, 1e-1]
        dt = torch.exp(torch.rand(E) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            s.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            torch.nn.init.uniform_(s.dt_proj.weight, -R ** -0.5, R ** -0.5)

    def forward(s, u):  # u [b, T, d]
        b, T, _ = u.shape
        x, z = s.in_proj(u).chunk(2, dim=-1)
        x = F.silu(s.conv1d(x.transpose(1, 2))[..., :T].transpose(1, 2))  # [b,T,E]
        dbc = s.x_proj(x)
        dlow, B, C = torch.split(dbc, [s.R, s.N, s.N], dim=-1)
        dt = F.softplus(s.dt_proj(dlow))  # [b,T,E]
        A = -torch.exp(s.A_log)  # [E,N]
        dA = torch.exp(dt.unsqueeze(-1) * A)  # [b,T,E,N]
        dBx = dt.unsqueeze(-1) * B.unsqueeze(2) * x.unsqueeze(-1)
        h = torch.zeros(b, s.E, s.N)
        hs = []
        for a_t, b_t in zip(dA.unbind(1), dBx.unbind(1)):
            h = torch.addcmul(b_t, a_t, h)
            hs.append(h)
        hs = torch.stack(hs, 1)  # [b,T,E,N]
        y = (hs * C.unsqueeze(2)).sum(-1) + s.D * x
        return s.out_proj(y * F.silu(z))


class RMSNorm(torch.nn.Module):
    def __init__(s, d, eps):
        super().__init__()
        s.weight = torch.nn.Parameter(torch.ones(d))
        s.eps = eps

    def forward(s, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps) * s.weight


class Mamba(torch.nn.Module):
    def __init__(s, V, d, L, E, N, K, R, eps=1e-5):
        super().__init__()
        s.emb = torch.nn.Embedding(V, d)
        torch.nn.init.normal_(s.emb.weight, std=0.02)
        s.norms = torch.nn.ModuleList([RMSNorm(d, eps) for _ in range(L)])
        s.mixers = torch.nn.ModuleList([Mixer(d, E, N, K, R) for _ in range(L)])
        s.norm_f = RMSNorm(d, eps)

    def forward(s, tok):
        h = s.emb(tok)
        for n, m in zip(s.norms, s.mixers):
            h = h + m(n(h))
        return s.norm_f(h) @ s.emb.weight.t()  # tied head

    def hf_state_dict(s):
        out = {"backbone.embeddings.weight": s.emb.weight, "backbone.norm_f.weight": s.norm_f.weight}
        for i, (n, m) in enumerate(zip(s.norms, s.mixers)):
            p = f"backbone.layers.{i}."
            out[p + "norm.weight"] = n.weight
            for k, v in m.state_dict().items():
                out[p + "mixer." + k] = v
        return {k: v.detach().numpy().copy() for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=os.path.join(HERE, "..", "..", "data", "tinyshakespeare.txt"))
    ap.add_argument("--out", default=os.path.join(HERE, "checkpoint"))
    ap.add_argument("--minutes", type=float, default=28.0, help="wall-clock training budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--state", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    data = np.frombuffer(open(a.text, "rb").read(), dtype=np.uint8)
    split = int(len(data) * 0.95)
    train, held = data[:split], data[split:]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "..", "heldout.txt"), "wb") as f:
        f.write(held.tobytes())

    d, L, N, K = a.d_model, a.layers, a.state, 4
    E, R, V = 2 * d, math.ceil(d / 16), 256
    model = Mamba(V, d, L, E, N, K, R)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams/1e6:.2f}M  d={d} L={L} E={E} N={N} R={R}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    budget = a.minutes * 60
    t0 = time.time()
    step = 0
    held_t = torch.from_numpy(held[: 64 * 256 + 1].astype(np.int64))

    def held_loss():
        model.eval()
        with torch.no_grad():
            x = held_t[:-1].view(64, 256)
            y = held_t[1:].view(64, 256)
            l = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1)).item()
        model.train()
        return l

    while True:
        frac = (time.time() - t0) / budget
        if frac >= 1:
            break
        warm = min(1.0, (step + 1) / 100)
        lr = a.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        ix = np.random.randint(0, len(train) - a.seq - 1, a.batch)
        xb = torch.from_numpy(np.stack([train[i:i + a.seq] for i in ix]).astype(np.int64))
        yb = torch.from_numpy(np.stack([train[i + 1:i + 1 + a.seq] for i in ix]).astype(np.int64))
        loss = F.cross_entropy(model(xb).reshape(-1, V), yb.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            el = time.time() - t0
            print(f"step {step} {el/60:5.1f} min lr {lr:.2e} train {loss.item()/math.log(2):.3f} bits/byte"
                  f" held {held_loss()/math.log(2):.3f} bits/byte", flush=True)

    print(f"done: {step} steps, held-out {held_loss()/math.log(2):.3f} bits/byte (first 16 KiB)", flush=True)
    sd = model.hf_state_dict()
    write_safetensors(os.path.join(a.out, "model.safetensors"), sd, "F32")
    cfg = {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "vocab_size": V, "hidden_size": d, "state_size": N, "num_hidden_layers": L,
        "expand": 2, "intermediate_size": E, "conv_kernel": K, "time_step_rank": R,
        "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True, "hidden_act": "silu",
        "residual_in_fp32": True, "tie_word_embeddings": True,
        "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "ByteTokenizer", "rill_tokenizer": "bytes"}, f, indent=2)


if __name__ == "__main__":
    main()
