"""Exercise 4.2 -- a masked tail: y = a x + b for a vector of any length.

Now the vector is longer than a block, and its length N is any number: the launcher starts
enough programs to cover it, each handling its own block of BLOCK numbers, and the last
block runs past the end of x. A load or a store there would touch memory that is not x's (on a
GPU, silently); a mask turns those lanes off. Chapter 4's README, 'Writing a first kernel',
masks the last program's lanes past the end. a and b are plain numbers, passed to the kernel as
arguments.

Shapes: x (N,) -> y (N,), N any positive length; BLOCK = 64.

    python exercises/ch4/masked_tail.py      # try yours on 100 numbers
    python exercises/check.py 4.2            # check it on many lengths
    python exercises/check.py 4.2 --hint     # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl

BLOCK = 64


@triton.jit
def scale_shift_kernel(x_ptr, y_ptr, N, a, b, BLOCK: tl.constexpr):
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write scale_shift_kernel")


def scale_shift(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """y = a x + b, one program per block of BLOCK numbers."""
    y = torch.empty_like(x)
    scale_shift_kernel[(triton.cdiv(x.numel(), BLOCK),)](x, y, x.numel(), a, b, BLOCK=BLOCK)
    return y


if __name__ == "__main__":
    show(scale_shift, torch.arange(100.0), 2.0, 1.0)
