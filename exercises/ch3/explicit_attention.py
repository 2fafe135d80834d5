"""Exercise 3.1 -- attention written out, equal to F.scaled_dot_product_attention.

Chapter 3 calls `F.scaled_dot_product_attention(q, k, v, is_causal=True)`: one op (SDPA). Write
the same thing from PyTorch's basic ops -- the scores, the causal mask, the softmax and the
weighted sum of chapter 2's `causal_attention` -- so that it equals SDPA in float64, values and
gradients (autograd differentiates your version; SDPA itself is off limits during the check).

Shapes: q, k, v (B, H, T, D) -> y (B, H, T, D).

    python exercises/ch3/explicit_attention.py   # try yours on one head of three positions
    python exercises/check.py 3.1                # check it on many shapes
    python exercises/check.py 3.1 --hint         # a hint (three, one at a time)
"""

import math  # noqa: F401  (you may want it)
import sys
from pathlib import Path

import torch

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def explicit_attention(q, k, v):
    raise NotImplementedError("write causal attention from basic ops")


if __name__ == "__main__":
    q, k, v = (torch.arange(12.0, dtype=torch.float64).reshape(1, 1, 3, 4) / 10 * s for s in (1, -1, 2))
    show(explicit_attention, q, k, v)
