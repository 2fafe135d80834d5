"""Exercise 4.1 -- a Triton kernel: rmsnorm forward, one program per row.

Write the body of `rmsnorm_kernel`: program i loads row i of x (C numbers, padded to the
power of two BLOCK_C with a mask), computes y = x / sqrt(mean(x^2) + eps) and stores it. The
launcher below starts one program per row. Without a GPU it runs in Triton's interpreter,
which runs each program with NumPy: the same numbers a GPU gives.

    python exercises/check.py 4.1

Hints:
- cols = tl.arange(0, BLOCK_C); mask = cols < C; x = tl.load(x_ptr + row * C + cols, mask=mask, other=0.0).
- tl.sum(x * x, axis=0) / C is mean(x^2): the padding adds zeros, so divide by C, not BLOCK_C.
- 1 / tl.sqrt(...), then tl.store(y_ptr + row * C + cols, y, mask=mask).
"""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_kernel(x_ptr, y_ptr, C, eps, BLOCK_C: tl.constexpr):
    row = tl.program_id(0)  # noqa: F841  (yours to use)
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write rmsnorm_kernel")


def rmsnorm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x (M, C) contiguous -> y (M, C): one program per row."""
    M, C = x.shape
    y = torch.empty_like(x)
    rmsnorm_kernel[(M,)](x, y, C, eps, BLOCK_C=triton.next_power_of_2(C))
    return y
