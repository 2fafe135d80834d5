"""Exercise 2.1 -- the backward pass of rmsnorm with a gain, on arrays.

Chapter 2's rmsnorm has no parameters (SPEC.md: no norm gains); most models' have one, a gain
w of C numbers that scales each channel after the normalization (Llama's RMSNorm). Per row of
C numbers: r = 1 / sqrt(mean(x^2) + eps) with eps = 1e-5, and y = w * x * r. Given g = dL/dy,
return dL/dx and dL/dw for the whole batch at once. Chapter 2's README derives the backward
without the gain ('Backpropagation through arrays', rmsnorm) and, for the linear layer, what
happens to a weight every row shares: start from there, derive the two gradients on paper,
then write them in NumPy.

Shapes: g and x (B, T, C), w (C,) -> (dL/dx (B, T, C), dL/dw (C,)). C is any width.

    python exercises/ch2/rmsnorm_backward.py   # try yours on one small batch
    python exercises/check.py 2.1              # check it on many shapes, against PyTorch in float64
    python exercises/check.py 2.1 --hint       # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

EPS = 1e-5


def rmsnorm_backward(g, x, w):
    """(dL/dx (B, T, C), dL/dw (C,)) of y = w * x / sqrt(mean(x^2) + eps), from g = dL/dy (B, T, C)."""
    raise NotImplementedError("write rmsnorm's backward, with its gain")


if __name__ == "__main__":
    x = np.array([[[1.0, -2.0, 3.0]]])  # (B, T, C) = (1, 1, 3)
    show(rmsnorm_backward, np.ones_like(x), x, np.array([1.0, 0.5, 2.0]))
