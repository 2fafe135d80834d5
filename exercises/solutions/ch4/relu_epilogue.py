"""Exercise 4.3, a worked solution (chapter 4's `linear_fwd_kernel` with RELU, trimmed)."""

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
    acc = tl.maximum(acc, 0.0)  # the epilogue: ReLU on the tile, before its one store
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], acc, mask=(rows[:, None] < M) & (cols[None, :] < N))


def linear_relu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    M, K = x.shape
    N = w.shape[0]
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    linear_relu_kernel[(triton.cdiv(M, BLOCK), triton.cdiv(N, BLOCK))](x, w, y, M, N, K, BLOCK_M=BLOCK, BLOCK_N=BLOCK,
                                                                        BLOCK_K=BLOCK)
    return y
