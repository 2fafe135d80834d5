"""Exercise 4.5 -- a Triton kernel: rmsnorm forward, one program per row.

Write the body of `rmsnorm_kernel`: program i normalizes row i of x, y = x / sqrt(mean(x^2) +
eps), the op of chapter 4's `kernels/rmsnorm.py` (forward only, without its saved r). It is
exercise 4.4's shape of kernel -- one row per program, padded to a power of two, one reduction
-- with rmsnorm's arithmetic. The check runs it on widths that are not powers of two.

Shapes: x (M, C) contiguous -> y (M, C); BLOCK_C = the next power of two >= C.

    python exercises/ch4/rmsnorm_kernel.py   # try yours on two rows of three
    python exercises/check.py 4.5            # check it on many shapes
    python exercises/check.py 4.5 --hint     # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

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


if __name__ == "__main__":
    show(rmsnorm, torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]]))
