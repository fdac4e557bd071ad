"""The repository's two PyTorch models with a checkpoint's weights loaded: the references rill is
checked against from Python (examples/python/pytorch_check.py, tests/python/test_torch.py).

  demo_mamba(checkpoint)   the byte-level Mamba-1 of examples/demo_model/train_mamba.py
  pendulum_s4d(checkpoint) the S4D pendulum estimator of examples/sensor_demo/train_s4d.py

Both are the trainers' own classes, not copies: what was trained is what rill is compared with.
The S4D model runs its convolution form (the kernel K = C·(exp(dtA)−1)/A·exp(dtA·l) applied by FFT
over the whole sequence), so it shares no code path with rill's recurrence. Needs Debian's
python3-torch (/usr/bin/python3).
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
for p in (os.path.join(ROOT, "scripts"), os.path.join(ROOT, "examples", "demo_model"),
          os.path.join(ROOT, "examples", "sensor_demo")):
    if p not in sys.path:
        sys.path.insert(0, p)
from st_io import read_safetensors  # noqa: E402
import train_mamba  # noqa: E402
import train_s4d  # noqa: E402

DEMO_CHECKPOINT = os.path.join(ROOT, "examples", "demo_model", "checkpoint")
SENSOR_CHECKPOINT = os.path.join(ROOT, "examples", "sensor_demo", "checkpoint")


def _config(checkpoint):
    with open(os.path.join(checkpoint, "config.json")) as f:
        return json.load(f)


def demo_mamba(checkpoint=DEMO_CHECKPOINT, dtype=torch.float64):
    """train_mamba.Mamba with the checkpoint's weights, in eval mode; model(tokens [b, T]) -> logits."""
    c = _config(checkpoint)
    model = train_mamba.Mamba(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"],
                              c["state_size"], c["conv_kernel"], c["time_step_rank"], c["layer_norm_epsilon"])
    st = read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    sd = {"emb.weight": st.pop("backbone.embeddings.weight"), "norm_f.weight": st.pop("backbone.norm_f.weight")}
    for i in range(c["num_hidden_layers"]):
        p = f"backbone.layers.{i}."
        sd[f"norms.{i}.weight"] = st.pop(p + "norm.weight")
        for k in [k for k in st if k.startswith(p + "mixer.")]:
            sd[f"mixers.{i}." + k[len(p + "mixer."):]] = st.pop(k)
    st.pop("lm_head.weight", None)  # tied: the embedding is the head
    if st:
        raise ValueError(f"{checkpoint}: tensors the PyTorch model has no place for: {sorted(st)}")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    return model.to(dtype).eval()


def pendulum_s4d(checkpoint=SENSOR_CHECKPOINT, dtype=torch.float64):
    """train_s4d.S4Model with the checkpoint's weights and input standardization, in eval mode;
    model(X [b, T, d_input]) -> [b, T, d_output]."""
    c = _config(checkpoint)
    model = train_s4d.S4Model(c["d_input"], c["d_output"], c["d_model"], c["n_layers"], c["d_state"],
                              c["input_mean"], c["input_std"])
    st = read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in st.items()}, strict=False)
    if unexpected or set(missing) != {"mean", "std"}:
        raise ValueError(f"{checkpoint}: missing {missing}, unexpected {unexpected}")
    return model.to(dtype).eval()


def logits(model, tokens):
    """The demo Mamba's logits [T, vocab] (float64 numpy) for one sequence of tokens."""
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(tokens, dtype=np.int64))[None])[0].double().numpy()


def stream(model, X):
    """The S4D model's outputs [T, d_output] (float64 numpy) for one sequence of input vectors."""
    p = next(model.parameters())
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(X), dtype=p.dtype)[None])[0].double().numpy()
