"""Exercise 2.3 -- the backward pass of causal attention, all heads of all names at once.

Forward per name and head: S = q k^T * scale, P = softmax(S) with the future masked (P = 0
there), y = P v. Given the forward's q, k, v, P and g = dL/dy, return dq, dk and dv. Chapter
2's README, 'Backpropagation through arrays', derives the softmax's backward for
cross-entropy: the same move works here. Derive the three gradients on paper, then write them.

Shapes: q, k, v, g (B, H, T, D); P (B, H, T, T); scale = 1 / sqrt(D) -> (dq, dk, dv), each
(B, H, T, D).

    python exercises/ch2/attention_backward.py   # try yours on one head of three positions
    python exercises/check.py 2.3                # check it on many shapes
    python exercises/check.py 2.3 --hint         # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def attention_backward(q, k, v, P, g, scale):
    """(dq, dk, dv), each (B, H, T, D)."""
    raise NotImplementedError("write attention's backward")


if __name__ == "__main__":
    q, k, v, g = (np.arange(12.0).reshape(1, 1, 3, 4) / 10 * s for s in (1, -1, 2, 1))  # (B, H, T, D) = (1, 1, 3, 4)
    S = q @ k.swapaxes(-1, -2) / 2 + np.triu(np.full((3, 3), -np.inf), k=1)
    P = np.exp(S - S.max(-1, keepdims=True))
    show(attention_backward, q, k, v, P / P.sum(-1, keepdims=True), g, 0.5)
