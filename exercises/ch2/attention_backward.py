"""Exercise 2.3 -- the backward pass of causal attention, all heads of all names at once.

Forward per name and head: S = q k^T * scale, P = softmax(S) with future positions masked
(P = 0 there), y = P v. Given the forward's q, k, v, P and g = dL/dy, return dq, dk, dv.

    python exercises/check.py 2.3

Shapes: q, k, v, g (B, H, T, D); P (B, H, T, T); scale = 1 / sqrt(D).
Hints (chapter 2's README, "Causal attention"):
- dv = P^T g;  dP = g v^T;  dS = P * (dP - rowsum(dP * P)).
- dq = dS k * scale;  dk = dS^T q * scale. Transposes of the last two axes: `.transpose(0, 1, 3, 2)`.
"""


def attention_backward(q, k, v, P, g, scale):
    """(dq, dk, dv), each (B, H, T, D)."""
    raise NotImplementedError("write attention's backward")
