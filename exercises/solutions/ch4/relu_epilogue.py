"""Exercise 4.7, a worked solution -- a matmul with its ReLU as the epilogue.

y = relu(x W^T), x (M, K), W (N, K): the MLP's first layer, in one kernel instead of two, as
chapter 4's `kernels/linear.py` does it (its README, 'The kernels'). One program computes a
BLOCK_M x BLOCK_N tile of y: it walks along K a BLOCK_K chunk at a time, multiplying a tile of
x by a tile of W with `tl.dot` and adding into an accumulator, and applies the ReLU to the
finished tile before its one store, so y never goes to memory without its ReLU. Tiles are 16
wide (tl.dot's smallest); every dimension here can be any size, so the edge tiles are partly
outside the matrices. Ask tl.dot for exact float32 (input_precision="ieee"), as chapter 4 does.

Shapes: x (M, K), W (N, K) -> y (M, N).

    python exercises/ch4/relu_epilogue.py    # try yours on a 2 x 3 times (4 x 3)^T
    python exercises/check.py 4.7            # check it on many shapes
    python exercises/check.py 4.7 --hint     # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl

BLOCK = 16


@triton.jit
def linear_relu_kernel(x_ptr, w_ptr, y_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        w = tl.load(w_ptr + cols[:, None] * K + ks[None, :], mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(x, tl.trans(w), input_precision="ieee")
    acc = tl.maximum(acc, 0.0)  # the epilogue: ReLU on the finished tile, before its one store
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], acc, mask=(rows[:, None] < M) & (cols[None, :] < N))


def linear_relu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """relu(x W^T) for contiguous x (M, K) and W (N, K), one program per 16 x 16 tile of y."""
    M, K = x.shape
    N = w.shape[0]
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    linear_relu_kernel[(triton.cdiv(M, BLOCK), triton.cdiv(N, BLOCK))](x, w, y, M, N, K, BLOCK_M=BLOCK, BLOCK_N=BLOCK,
                                                                        BLOCK_K=BLOCK)
    return y


if __name__ == "__main__":
    show(linear_relu, torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]), torch.eye(4, 3) - 0.5)
