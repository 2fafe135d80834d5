"""Exercise 2.1, a worked solution (chapter 2's `rmsnorm` backward)."""


def rmsnorm_backward(g, y, r):
    C = g.shape[-1]
    return r * (g - y * ((g * y).sum(axis=-1, keepdims=True) / C))
