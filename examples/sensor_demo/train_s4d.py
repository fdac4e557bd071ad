#!/usr/bin/python3
"""Train the sensor demo: an S4D model that estimates a pendulum's angle and unmeasured angular
velocity from a noisy angle sensor and the known drive, one 1 kHz sample at a time.

The model is S4Model of state-spaces/s4 example.py with the S4D layers of models/s4/s4d.py, written
out below as the authors define it (Vandermonde kernel, FFT convolution, GELU, 1x1 conv + GLU,
residual, post-LayerNorm; no pooling: an output every step). The inputs are standardized per channel
first; the mean and std go into config.json (input_mean, input_std), where rill's converter finds them.

    apt-get install python3-torch          # Debian's; run with /usr/bin/python3
    /usr/bin/python3 examples/sensor_demo/train_s4d.py      # about 10 minutes on 2 cores

Writes into examples/sensor_demo/: checkpoint/{config.json, model.safetensors}, the held-out
trajectory (heldout_inputs.npy [T, 2]: measured angle, drive; heldout_targets.npy [T, 2]: angle,
angular velocity) and this trainer's own outputs on it (heldout_trainer_outputs.npy, float64 forward
pass over the whole sequence), and metrics.json (RMSE against the baselines on 32 held-out runs of
10 s, after their first second).
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import plant  # noqa: E402
from st_io import write_safetensors, write_npy  # noqa: E402

D_MODEL, N_LAYERS, D_STATE = 32, 3, 32
TRAIN_T, BATCH, STEPS = 8000, 6, 900
SEED = 7


class S4DKernel(nn.Module):
    """models/s4/s4d.py: a diagonal SSM kernel with N/2 complex modes per channel."""

    def __init__(self, d_model, N=64, dt_min=0.001, dt_max=0.1):
        super().__init__()
        H = d_model
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        C = torch.randn(H, N // 2, dtype=torch.cfloat)
        self.C = nn.Parameter(torch.view_as_real(C))
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(N // 2).float().repeat(H, 1))

    def forward(self, L):
        dt = torch.exp(self.log_dt)  # (H)
        C = torch.view_as_complex(self.C)  # (H N)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H N)
        dtA = A * dt.unsqueeze(-1)  # (H N)
        K = dtA.unsqueeze(-1) * torch.arange(L, device=A.device)  # (H N L)
        C = C * (torch.exp(dtA) - 1.0) / A
        return 2 * torch.einsum("hn, hnl -> hl", C, torch.exp(K)).real


class S4D(nn.Module):
    def __init__(self, d_model, d_state=64, **kernel_args):
        super().__init__()
        self.h = d_model
        self.D = nn.Parameter(torch.randn(self.h))
        self.kernel = S4DKernel(self.h, N=d_state, **kernel_args)
        self.activation = nn.GELU()
        self.output_linear = nn.Sequential(nn.Conv1d(self.h, 2 * self.h, kernel_size=1), nn.GLU(dim=-2))

    def forward(self, u):  # u (B H L)
        L = u.size(-1)
        k = self.kernel(L=L)
        k_f = torch.fft.rfft(k, n=2 * L)
        u_f = torch.fft.rfft(u, n=2 * L)
        y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
        y = y + u * self.D.unsqueeze(-1)
        return self.output_linear(self.activation(y))


class S4Model(nn.Module):
    """example.py's S4Model without pooling (prenorm=False), plus input standardization."""

    def __init__(self, d_input, d_output, d_model, n_layers, d_state, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.encoder = nn.Linear(d_input, d_model)
        self.s4_layers = nn.ModuleList([S4D(d_model, d_state, dt_min=1e-3, dt_max=1e-1) for _ in range(n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(n_layers)])
        self.decoder = nn.Linear(d_model, d_output)

    def forward(self, x):  # (B L d_input) -> (B L d_output)
        x = self.encoder((x - self.mean) / self.std).transpose(-1, -2)
        for layer, norm in zip(self.s4_layers, self.norms):
            x = norm((layer(x) + x).transpose(-1, -2)).transpose(-1, -2)
        return self.decoder(x.transpose(-1, -2))


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(os.cpu_count() or 2)
    rng = np.random.default_rng(SEED)
    t0 = time.time()
    x_train, y_train = plant.simulate(rng, 256, TRAIN_T)
    x_val, y_val = plant.simulate(np.random.default_rng(SEED + 1), 32, 10000)
    mean = x_train.reshape(-1, 2).mean(0).tolist()
    std = x_train.reshape(-1, 2).std(0).tolist()
    y_scale = torch.tensor(y_train.reshape(-1, 2).std(0), dtype=torch.float32)
    print(f"simulated {x_train.shape[0]} training runs of {TRAIN_T} steps in {time.time() - t0:.1f} s; "
          f"input mean {np.round(mean, 3)}, std {np.round(std, 3)}", flush=True)

    model = S4Model(2, 2, D_MODEL, N_LAYERS, D_STATE, mean, std)
    ssm = [p for n, p in model.named_parameters() if ".kernel." in n]
    rest = [p for n, p in model.named_parameters() if ".kernel." not in n]
    opt = torch.optim.AdamW([{"params": ssm, "lr": 2e-3, "weight_decay": 0.0},
                             {"params": rest, "lr": 4e-3, "weight_decay": 0.01}])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[2e-3, 4e-3], total_steps=STEPS, pct_start=0.1)
    xt = torch.tensor(x_train, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.float32)
    t0 = time.time()
    for step in range(STEPS):
        idx = torch.randint(0, xt.shape[0], (BATCH,))
        loss = (((model(xt[idx]) - yt[idx]) / y_scale) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == STEPS - 1:
            print(f"step {step:4d}  loss {loss.item():.5f}  ({time.time() - t0:.0f} s)", flush=True)

    # Held-out: 32 runs of 10 s for the metrics (float64 forward), one more for the committed files.
    model = model.double().eval()
    with torch.no_grad():
        pred = model(torch.tensor(x_val)).numpy()
    skip = 1000  # RMSE after the first second: every estimator starts from nothing
    pred, x_val, y_val = pred[:, skip:], x_val, y_val[:, skip:]
    best_w = min(range(1, 201), key=lambda w: plant.rmse(plant.baselines(x_train[:64], w), y_train[:64])[1])
    metrics = {
        "heldout_runs": int(x_val.shape[0]), "steps_per_run": int(x_val.shape[1]),
        "rmse_model": dict(zip(["theta_rad", "omega_rad_s"], plant.rmse(pred, y_val).tolist())),
        "rmse_last_value_and_one_step_difference":
            dict(zip(["theta_rad", "omega_rad_s"], plant.rmse(plant.baselines(x_val, 1)[:, skip:], y_val).tolist())),
        f"rmse_last_value_and_{best_w}_step_difference":
            dict(zip(["theta_rad", "omega_rad_s"], plant.rmse(plant.baselines(x_val, best_w)[:, skip:], y_val).tolist())),
        "rmse_after_steps": skip,
        "difference_window_steps": best_w,
        "train_steps": STEPS, "train_seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(metrics, indent=2))
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    ck = os.path.join(HERE, "checkpoint")
    os.makedirs(ck, exist_ok=True)
    sd = {k: v.float().numpy() for k, v in model.state_dict().items() if k not in ("mean", "std")}
    write_safetensors(os.path.join(ck, "model.safetensors"), sd)
    cfg = {"model_type": "s4d", "d_input": 2, "d_output": 2, "d_model": D_MODEL, "d_state": D_STATE,
           "n_layers": N_LAYERS, "prenorm": False, "pool": "none", "input_mean": mean, "input_std": std}
    with open(os.path.join(ck, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    x_h, y_h = plant.simulate(np.random.default_rng(SEED + 2), 1, 20000)
    x_h = x_h[0].astype(np.float32).astype(np.float64)  # what rill reads
    with torch.no_grad():  # the committed f32 weights, forward in float64
        model.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in sd.items()}, strict=False)
        out = model(torch.tensor(x_h)[None])[0].numpy()
    write_npy(os.path.join(HERE, "heldout_inputs.npy"), x_h)
    write_npy(os.path.join(HERE, "heldout_targets.npy"), y_h[0])
    write_npy(os.path.join(HERE, "heldout_trainer_outputs.npy"), out)
    print(f"held-out run of {len(x_h)} steps: model RMSE {plant.rmse(out, y_h[0])}, "
          f"baseline ({best_w}-step difference) {plant.rmse(plant.baselines(x_h, best_w), y_h[0])}")


if __name__ == "__main__":
    main()
