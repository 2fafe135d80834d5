"""Exercise 4.1 -- a first kernel: load a block of numbers, add, store.

A Triton kernel is written for one program: one instance that handles a block of the data at
once (chapter 4's README, 'Writing a first kernel', reads such a kernel line by line). Here one
program adds two vectors of BLOCK numbers: it loads BLOCK numbers from x and from z, adds them,
and stores BLOCK numbers into y. BLOCK is the whole length, so no lane is past the end (no
mask needed). The launcher below starts the one program; without a GPU it runs in Triton's
interpreter, where every load and store is checked against its tensor.

Shapes: x, z (BLOCK,), BLOCK a power of two -> y (BLOCK,).

    python exercises/ch4/add_block.py      # try yours on eight numbers
    python exercises/check.py 4.1          # check it on several lengths
    python exercises/check.py 4.1 --hint   # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, z_ptr, y_ptr, BLOCK: tl.constexpr):
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write add_kernel")


def add(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """y = x + z for two vectors of one power-of-two length, in one program."""
    y = torch.empty_like(x)
    add_kernel[(1,)](x, z, y, BLOCK=x.numel())
    return y


if __name__ == "__main__":
    show(add, torch.arange(8.0), torch.full((8,), 0.5))
