"""Exercise 2.1 -- the backward pass of rmsnorm, on arrays.

Forward, per row of C numbers: r = 1 / sqrt(mean(x^2) + eps), y = x * r. Given g = dL/dy,
return dL/dx, all rows at once. Derive it first (chapter 2's README, "rmsnorm"), then write it.

    python exercises/check.py 2.1

Shapes: g, y (B, T, C); r (B, T, 1).
Hints:
- dy_i/dx_k = r ([i = k] - y_i y_k / C).
- The answer has the form r * (g - y * something), where something is one number per row.
"""

import numpy as np  # noqa: F401  (you will need it)


def rmsnorm_backward(g, y, r):
    """dL/dx (B, T, C) from g = dL/dy (B, T, C), the output y (B, T, C) and r (B, T, 1)."""
    raise NotImplementedError("write rmsnorm's backward")
