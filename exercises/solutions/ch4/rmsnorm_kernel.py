"""Exercise 4.1, a worked solution."""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_kernel(x_ptr, y_ptr, C, eps, BLOCK_C: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_C)
    mask = cols < C
    x = tl.load(x_ptr + row * C + cols, mask=mask, other=0.0)
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / C + eps)  # padding adds zeros: divide by C
    tl.store(y_ptr + row * C + cols, x * r, mask=mask)


def rmsnorm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    M, C = x.shape
    y = torch.empty_like(x)
    rmsnorm_kernel[(M,)](x, y, C, eps, BLOCK_C=triton.next_power_of_2(C))
    return y
