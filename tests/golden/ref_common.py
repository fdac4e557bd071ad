"""float64 numpy building blocks shared by the golden reference scripts."""
import numpy as np


def softplus(x):
    """PyTorch's softplus with threshold 20."""
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def silu(x):
    return x / (1 + np.exp(-x))


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def causal_conv(x, w, b):
    """Depthwise causal conv over the whole sequence with zero history.
    x [T, C], w [C, K] (w[:, K-1] hits the newest sample), b [C] -> [T, C]; and the last K-1 inputs."""
    T, C = x.shape
    K = w.shape[1]
    pad = np.concatenate([np.zeros((K - 1, C)), x], 0)
    out = np.stack([(pad[t:t + K].T * w).sum(-1) for t in range(T)], 0) + b
    return out, pad[-(K - 1):]
