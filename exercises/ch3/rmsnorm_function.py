"""Exercise 3.2 -- rmsnorm as a torch.autograd.Function with a hand-written backward.

This is how chapter 4 plugs its kernels into PyTorch (its `kernels/rmsnorm.py` does it): a
Function whose `forward` computes the result and saves what backward will need, and whose
`backward` returns dL/dx from g = dL/dy. Write both, for rmsnorm over the last dimension (your
exercise 2.1, with the gain w = 1, is the math); the check compares them with PyTorch's and runs
`torch.autograd.gradcheck`. PyTorch's own rmsnorm and autograd's `grad` are off limits.

Shapes: x (..., C) -> y (..., C); backward: g (..., C) -> dL/dx (..., C).

    python exercises/ch3/rmsnorm_function.py   # try yours on one row
    python exercises/check.py 3.2              # check it on many shapes, then gradcheck
    python exercises/check.py 3.2 --hint       # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import torch

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

EPS = 1e-5


class RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("write forward (and save what backward needs)")

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError("write backward")


if __name__ == "__main__":
    x = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    y = show(RMSNorm.apply, x)

    def your_backward(g):  # dL/dx for y = RMSNorm.apply(x), through your backward
        return torch.autograd.grad(y, x, g)[0]

    if y is not None:
        show(your_backward, torch.ones_like(y))
