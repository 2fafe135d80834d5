"""Exercise 3.2, a worked solution."""

import torch

EPS = 1e-5


class RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)
        y = x * r
        ctx.save_for_backward(y, r)
        return y

    @staticmethod
    def backward(ctx, g):
        y, r = ctx.saved_tensors
        return r * (g - y * (g * y).mean(-1, keepdim=True))
