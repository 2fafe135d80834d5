"""Exercise 3.1 -- attention written out, equal to F.scaled_dot_product_attention.

Chapter 3 calls `F.scaled_dot_product_attention(q, k, v, is_causal=True)`: one op. Write the
same thing from PyTorch's basic ops -- scores, causal mask, softmax, weighted sum -- so that
it equals SDPA in float64, values and gradients (autograd differentiates your version).

    python exercises/check.py 3.1

Shapes: q, k, v (B, H, T, D) -> y (B, H, T, D).
Hints:
- scores = q @ k.transpose(-2, -1) / sqrt(D): (B, H, T, T).
- Causal: position i sees j <= i. `torch.ones(T, T, dtype=torch.bool).tril()` is True there;
  set the rest to -inf before the softmax (`masked_fill`).
"""

import math  # noqa: F401  (you will need it)

import torch  # noqa: F401  (you will need it)


def explicit_attention(q, k, v):
    raise NotImplementedError("write causal attention from basic ops")
