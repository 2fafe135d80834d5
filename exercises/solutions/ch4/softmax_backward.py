"""Exercise 4.5, a worked solution -- a backward kernel: softmax's, one program per row.

Exercise 4.4 computed y = softmax(x) for each row; now its backward. Given y, which the forward
stored, and g = dL/dy, the gradient arriving from above, write dx = dL/dx. Work it out on paper
first, for one row: chapter 2 derives softmax's backward (the softmax line of attention's
backward, in its README's 'Backpropagation through arrays'), and it needs only y and g, not x.
Then write it in the shape of rmsnorm's backward kernel (chapter 4's README, 'A backward kernel:
rmsnorm backward'): one program per row, the row in a block padded to a power of two, one
reduction over it, which the padding lanes must not change.

Shapes: y, g (M, C) contiguous -> dx (M, C), any C; BLOCK_C = the next power of two >= C.

    python exercises/ch4/softmax_backward.py   # try yours on two rows of three
    python exercises/check.py 4.5              # check it on many shapes, against autograd
    python exercises/check.py 4.5 --hint       # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl


@triton.jit
def softmax_backward_kernel(y_ptr, g_ptr, dx_ptr, C, BLOCK_C: tl.constexpr):
    # On paper, for one row: dy_i/dx_j = y_i ([i == j] - y_j), so
    #     dx_j = sum_i g_i dy_i/dx_j = y_j g_j - y_j sum_i g_i y_i = y_j (g_j - sum_i g_i y_i)
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_C)
    mask = cols < C
    y = tl.load(y_ptr + row * C + cols, mask=mask, other=0.0)  # padding: y = 0, so it adds nothing to the sum
    g = tl.load(g_ptr + row * C + cols, mask=mask, other=0.0)
    dx = y * (g - tl.sum(g * y, axis=0))  # one reduction over the row: sum_i g_i y_i
    tl.store(dx_ptr + row * C + cols, dx, mask=mask)


def softmax_backward(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """dL/dx for y = softmax(x) of each row, from y and g = dL/dy, both contiguous (M, C); one
    program per row."""
    M, C = y.shape
    dx = torch.empty_like(y)
    softmax_backward_kernel[(M,)](y, g, dx, C, BLOCK_C=triton.next_power_of_2(C))
    return dx


if __name__ == "__main__":
    show(softmax_backward, torch.tensor([[0.2, 0.3, 0.5], [0.25, 0.25, 0.5]]),
         torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]]))
