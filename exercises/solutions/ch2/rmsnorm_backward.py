"""Exercise 2.1, a worked solution.

With n = x r, the normalized rows, y = w * n. Backwards: dL/dn = g * w, and from there
chapter 2's rmsnorm backward with g * w in place of g: dL/dx = r (g w - n mean(g w n)).
Every row uses the same w, so dL/dw sums g * n over all of them, as the linear layer's dW does.
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

EPS = 1e-5


def rmsnorm_backward(g, x, w):
    """(dL/dx (B, T, C), dL/dw (C,)) of y = w * x / sqrt(mean(x^2) + eps), from g = dL/dy (B, T, C)."""
    C = x.shape[-1]
    r = 1 / np.sqrt((x * x).sum(axis=-1, keepdims=True) / C + EPS)  # (B, T, 1)
    n = x * r  # the normalized rows, (B, T, C)
    gn = g * w  # dL/dn
    dx = r * (gn - n * (gn * n).sum(axis=-1, keepdims=True) / C)
    dw = (g * n).reshape(-1, C).sum(axis=0)  # every row shares w: its gradient sums over them all
    return dx, dw


if __name__ == "__main__":
    x = np.array([[[1.0, -2.0, 3.0]]])  # (B, T, C) = (1, 1, 3)
    show(rmsnorm_backward, np.ones_like(x), x, np.array([1.0, 0.5, 2.0]))
