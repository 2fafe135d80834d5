"""Exercise 3.2 -- rmsnorm as a torch.autograd.Function with a hand-written backward.

This is how chapter 4 plugs its kernels into PyTorch: a Function whose `forward` computes the
result and saves what backward needs, and whose `backward` returns dL/dx from dL/dy. Write
both for rmsnorm over the last axis (eps = 1e-5); the check runs `torch.autograd.gradcheck`.

    python exercises/check.py 3.2

Hints:
- forward: r = 1 / sqrt(mean(x^2) + eps); save y and r with `ctx.save_for_backward`.
- backward: exercise 2.1's formula, in PyTorch: r * (g - y * mean(g * y)).
"""

import torch

EPS = 1e-5


class RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("write forward (and save what backward needs)")

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError("write backward")
