"""Exercise 2.3, a worked solution (chapter 2's `causal_attention` backward, with tau).

dv, dP and the softmax's backward are chapter 2's lines. S = tau[h] A with A = q k^T, so
dA = tau[h] dS, which gives dq and dk as in the chapter with tau[h] for 1/sqrt(D); and each
entry of S contributes dS * A to dtau[h], summed over every name and every pair of positions
of head h (the masked entries add nothing: dS is 0 there).
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def attention_backward(q, k, v, P, g, tau):
    """(dq, dk, dv, dtau): three (B, H, T, D) arrays, then dtau (H,)."""
    t = tau[None, :, None, None]  # (1, H, 1, 1): each head's tau, broadcast over names and positions
    dv = P.transpose(0, 1, 3, 2) @ g  # y = P v
    dP = g @ v.transpose(0, 1, 3, 2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # softmax's backward
    dq = t * dS @ k  # S = tau q k^T
    dk = t * dS.transpose(0, 1, 3, 2) @ q
    dtau = (dS * (q @ k.transpose(0, 1, 3, 2))).sum(axis=(0, 2, 3))  # every score tau[h] scales adds its share
    return dq, dk, dv, dtau


if __name__ == "__main__":
    q, k, v, g = (np.arange(12.0).reshape(1, 1, 3, 4) / 10 * s for s in (1, -1, 2, 1))  # (B, H, T, D) = (1, 1, 3, 4)
    tau = np.array([0.5])  # one head
    S = tau[0] * q @ k.swapaxes(-1, -2) + np.triu(np.full((3, 3), -np.inf), k=1)
    P = np.exp(S - S.max(-1, keepdims=True))
    show(attention_backward, q, k, v, P / P.sum(-1, keepdims=True), g, tau)
