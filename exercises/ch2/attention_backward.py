"""Exercise 2.3 -- causal attention's backward with a learnable temperature per head.

Chapter 2 scales every head's scores by the fixed 1/sqrt(D). Here each head h has its own
temperature tau[h], a parameter that training learns, as some models do: per name and head,
S = tau[h] q k^T, P = softmax(S) with the future masked (P = 0 there), y = P v. Given the
forward's q, k, v, P, tau and g = dL/dy, return dq, dk, dv and dtau. Chapter 2's README,
'Backpropagation through arrays', derives attention's backward with the fixed scale: tau
changes two of its lines, and needs a gradient of its own that the chapter does not derive,
since tau[h] scales every score of head h, of every name. Derive the four on paper, then write
them.

Shapes: q, k, v, g (B, H, T, D); P (B, H, T, T); tau (H,) -> (dq, dk, dv, dtau): dq, dk and dv
(B, H, T, D), dtau (H,).

    python exercises/ch2/attention_backward.py   # try yours on one head of three positions
    python exercises/check.py 2.3                # check it on many shapes
    python exercises/check.py 2.3 --hint         # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def attention_backward(q, k, v, P, g, tau):
    """(dq, dk, dv, dtau): three (B, H, T, D) arrays, then dtau (H,)."""
    raise NotImplementedError("write attention's backward, with tau's gradient")


if __name__ == "__main__":
    q, k, v, g = (np.arange(12.0).reshape(1, 1, 3, 4) / 10 * s for s in (1, -1, 2, 1))  # (B, H, T, D) = (1, 1, 3, 4)
    tau = np.array([0.5])  # one head
    S = tau[0] * q @ k.swapaxes(-1, -2) + np.triu(np.full((3, 3), -np.inf), k=1)
    P = np.exp(S - S.max(-1, keepdims=True))
    show(attention_backward, q, k, v, P / P.sum(-1, keepdims=True), g, tau)
