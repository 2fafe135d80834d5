"""Exercise 2.3, a worked solution (chapter 2's `causal_attention` backward)."""


def attention_backward(q, k, v, P, g, scale):
    dv = P.transpose(0, 1, 3, 2) @ g
    dP = g @ v.transpose(0, 1, 3, 2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)) * scale
    dq = dS @ k
    dk = dS.transpose(0, 1, 3, 2) @ q
    return dq, dk, dv
