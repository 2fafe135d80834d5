"""Exercise 3.1, a worked solution."""

import math
import sys
from pathlib import Path

import torch

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def explicit_attention(q, k, v):
    T, D = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()  # i sees j <= i
    weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    return weights @ v  # (B, H, T, D)


if __name__ == "__main__":
    q, k, v = (torch.arange(12.0, dtype=torch.float64).reshape(1, 1, 3, 4) / 10 * s for s in (1, -1, 2))
    show(explicit_attention, q, k, v)
