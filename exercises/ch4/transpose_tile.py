"""Exercise 4.3 -- a 2-D tile: the transpose of a matrix.

A launch's grid can have two axes: program (i, j) owns the tile of rows i*BLOCK_M ... and
columns j*BLOCK_N ... of x (chapter 4's README, 'A 2-D tile: strides', builds such a tile of
pointers and its mask). Write y = x^T: each program loads its (BLOCK_M, BLOCK_N) tile of x and
stores it, transposed, where it belongs in y. Both matrices are row-major: a row is contiguous
in memory. The tiles at the bottom and right edges are partly outside the matrix.

Shapes: x (M, N) -> y (N, M), any M and N; tiles of BLOCK_M x BLOCK_N = 16 x 8.

    python exercises/ch4/transpose_tile.py   # try yours on a 3 x 5 matrix
    python exercises/check.py 4.3            # check it on many shapes
    python exercises/check.py 4.3 --hint     # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_N = 16, 8


@triton.jit
def transpose_kernel(x_ptr, y_ptr, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write transpose_kernel")


def transpose(x: torch.Tensor) -> torch.Tensor:
    """y = x^T for a contiguous (M, N) matrix, one program per tile."""
    M, N = x.shape
    y = torch.empty((N, M), dtype=x.dtype)
    transpose_kernel[(triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))](x, y, M, N, BLOCK_M=BLOCK_M,
                                                                          BLOCK_N=BLOCK_N)
    return y


if __name__ == "__main__":
    show(transpose, torch.arange(15.0).reshape(3, 5))
