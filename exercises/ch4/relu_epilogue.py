"""Exercise 4.3 -- a matmul with its ReLU as the epilogue.

y = relu(x W^T), x (M, K), W (N, K). One program computes a BLOCK_M x BLOCK_N tile of y: it
loops over K in steps of BLOCK_K, multiplying tiles with `tl.dot`, and applies the ReLU to its
tile before the one store -- the MLP's fc1 in one kernel instead of two, and y never goes to
memory un-ReLU'd. The launcher picks tiles of 16 (tl.dot's smallest).

    python exercises/check.py 4.3

Hints:
- rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M), cols likewise for N, ks for K; mask the loads
  (rows < M, cols < N, ks < K) with other=0.0.
- acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32); acc += tl.dot(x, tl.trans(w),
  input_precision="ieee") (exact float32, as chapter 4 asks).
- tl.maximum(acc, 0.0) before tl.store.
"""

import torch
import triton
import triton.language as tl

BLOCK = 16


@triton.jit
def linear_relu_kernel(x_ptr, w_ptr, y_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr):
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write linear_relu_kernel")


def linear_relu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    M, K = x.shape
    N = w.shape[0]
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    linear_relu_kernel[(triton.cdiv(M, BLOCK), triton.cdiv(N, BLOCK))](x, w, y, M, N, K, BLOCK_M=BLOCK, BLOCK_N=BLOCK,
                                                                        BLOCK_K=BLOCK)
    return y
