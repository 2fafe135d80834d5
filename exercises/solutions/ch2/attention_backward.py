"""Exercise 2.3, a worked solution (chapter 2's `causal_attention` backward)."""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def attention_backward(q, k, v, P, g, scale):
    """(dq, dk, dv), each (B, H, T, D)."""
    dv = P.transpose(0, 1, 3, 2) @ g  # y = P v
    dP = g @ v.transpose(0, 1, 3, 2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)) * scale  # softmax's backward, then S's scale
    dq = dS @ k  # S = q k^T
    dk = dS.transpose(0, 1, 3, 2) @ q
    return dq, dk, dv


if __name__ == "__main__":
    q, k, v, g = (np.arange(12.0).reshape(1, 1, 3, 4) / 10 * s for s in (1, -1, 2, 1))  # (B, H, T, D) = (1, 1, 3, 4)
    S = q @ k.swapaxes(-1, -2) / 2 + np.triu(np.full((3, 3), -np.inf), k=1)
    P = np.exp(S - S.max(-1, keepdims=True))
    show(attention_backward, q, k, v, P / P.sum(-1, keepdims=True), g, 0.5)
