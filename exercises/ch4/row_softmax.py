"""Exercise 4.4 -- a reduction over a row: softmax, one program per row.

Softmax turns a row of scores into probabilities: the exponential of each, divided by their
sum; subtracting the row's largest score first keeps exp from overflowing and changes nothing
(chapter 1's `softmax` does it). Here one program handles one row: it loads the row into a
block, reduces it to its max and then to a sum (tl.max and tl.sum collapse a block to one
number), and stores the probabilities (chapter 4's README, 'A reduction over a row: rmsnorm
forward', reduces rows the same way). The block has a power-of-two width BLOCK_C >= C, so its
last lanes are padding, and the padding must change neither the max nor the sum.

Shapes: x (M, C) -> y (M, C), each row summing to 1; any C.

    python exercises/ch4/row_softmax.py    # try yours on two rows of three
    python exercises/check.py 4.4          # check it on many shapes (large and negative scores too)
    python exercises/check.py 4.4 --hint   # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(x_ptr, y_ptr, C, BLOCK_C: tl.constexpr):
    row = tl.program_id(0)  # noqa: F841  (yours to use)
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write softmax_kernel")


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax of each row of a contiguous (M, C) matrix, one program per row."""
    M, C = x.shape
    y = torch.empty_like(x)
    softmax_kernel[(M,)](x, y, C, BLOCK_C=triton.next_power_of_2(C))
    return y


if __name__ == "__main__":
    show(softmax, torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
