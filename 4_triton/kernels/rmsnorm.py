"""RMSNorm without a gain: y = x * r, r = 1 / sqrt(mean(x^2) + eps), per row.

Naive PyTorch: `x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)` is four kernels,
each reading and writing a (T, C) or (T, 1) array; its backward, built by autograd, is
about as many again. The fused forward reads x once and writes y and the per-row r (the
one number backward cannot cheaply recompute, as Liger-Kernel does); the fused backward
reads x, r and the incoming gradient once.

The residual stream feeds both this norm and the residual add after the block, so its
gradient is the sum of two contributions. Rather than letting autograd add them with a
separate kernel, `RMSNormWithResidual` also hands `x` through as a second output: the
residual add consumes that, and the backward kernel adds the two gradients as it writes dx.
`RMSNorm` is the plain norm, for where the input feeds nothing else.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/rmsnorm.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402
from kernels.launch import ensure_contiguous  # noqa: E402

EPS = 1e-5


def rmsnorm_reference(x, eps=EPS):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@triton.jit
def rmsnorm_fwd_kernel(
    x_ptr,  # (M, C) input: M rows, B * T for a batch
    y_ptr,  # (M, C) output
    r_ptr,  # (M,) output: 1 / rms of each row, saved for backward
    M, C,
    EPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < M) & (cols[None, :] < C)
    x = tl.load(x_ptr + rows[:, None] * C + cols[None, :], mask=mask, other=0.0)
    eps = tl.full([1], EPS, x.dtype)  # in x's dtype: a float argument would arrive as fp32
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / C + eps)  # (BLOCK_M,)
    tl.store(y_ptr + rows[:, None] * C + cols[None, :], x * r[:, None], mask=mask)
    tl.store(r_ptr + rows, r, mask=rows < M)


# Backward, for one row with y = x r and r = (mean(x^2) + eps)^(-1/2):
#     dr/dx_j = -r^3 x_j / C,   so   dy_i/dx_j = r [i == j] - x_i r^3 x_j / C
#     dx_j = sum_i g_i dy_i/dx_j = r g_j - r^3 x_j (g . x) / C = r (g_j - y_j mean(g * y))
# plus g_residual, the gradient arriving through the residual copy of x (RMSNormWithResidual).
@triton.jit
def rmsnorm_bwd_kernel(
    x_ptr,  # (M, C) forward input
    r_ptr,  # (M,) 1 / rms saved by the forward
    g_ptr,  # (M, C) gradient of the loss with respect to y
    g_residual_ptr,  # (M, C) gradient with respect to the residual copy of x (if HAS_RESIDUAL)
    dx_ptr,  # (M, C) output
    M, C,
    HAS_RESIDUAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < M) & (cols[None, :] < C)
    offsets = rows[:, None] * C + cols[None, :]
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    r = tl.load(r_ptr + rows, mask=rows < M, other=0.0)
    g = tl.load(g_ptr + offsets, mask=mask, other=0.0)
    y = x * r[:, None]  # recomputed: cheaper than storing and reloading it
    dx = r[:, None] * (g - y * (tl.sum(g * y, axis=1) / C)[:, None])
    if HAS_RESIDUAL:
        dx += tl.load(g_residual_ptr + offsets, mask=mask, other=0.0)
    tl.store(dx_ptr + offsets, dx, mask=mask)


def rmsnorm_forward(x):
    """x (..., C), any leading shape: every row is normalized on its own."""
    C = x.shape[-1]
    M = x.numel() // C
    y = torch.empty_like(x)
    r = torch.empty(M, device=x.device, dtype=x.dtype)
    plan = launch.rows(M, C)  # a program normalizes up to 64 whole rows
    rmsnorm_fwd_kernel[plan.grid](x, y, r, M, C, EPS=EPS, **plan.meta)
    return y, r


def rmsnorm_backward(x, r, g, g_residual=None):
    C = x.shape[-1]
    M = x.numel() // C
    dx = torch.empty_like(x)
    plan = launch.rows(M, C)
    rmsnorm_bwd_kernel[plan.grid](x, r, g, g if g_residual is None else g_residual, dx, M, C,
                                  HAS_RESIDUAL=g_residual is not None, **plan.meta)
    return dx


class RMSNorm(torch.autograd.Function):
    """rmsnorm(x), for an input that feeds nothing else."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, x):
        y, r = rmsnorm_forward(x)
        ctx.save_for_backward(x, r)
        return y

    @staticmethod
    @ensure_contiguous
    def backward(ctx, g):
        x, r = ctx.saved_tensors
        return rmsnorm_backward(x, r, g)


class RMSNormWithResidual(torch.autograd.Function):
    """(rmsnorm(x), x): the residual stream x is handed through for the residual add after the
    block, so both of its gradients meet in one backward kernel instead of an autograd add."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, x):
        y, r = rmsnorm_forward(x)
        ctx.save_for_backward(x, r)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not a zero-fill kernel
        return y, x.view_as(x)

    @staticmethod
    @ensure_contiguous
    def backward(ctx, g, g_residual):
        x, r = ctx.saved_tensors
        if g is None:  # only the residual copy was used
            return g_residual
        return rmsnorm_backward(x, r, g, g_residual)


def bench(T=16, C=16, device="cuda"):
    x = torch.randn(T, C, device=device)
    ours = triton.testing.do_bench(lambda: rmsnorm_forward(x))
    torch_ms = triton.testing.do_bench(lambda: rmsnorm_reference(x))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """Forward and backward of rmsnorm with its residual copy for a batch of 8 documents at the
    model's shape (B, T, C) = (8, 16, 16): two programs of 64 rows, against the reference."""
    x = torch.randn(8, 16, 16, device=device, requires_grad=True)
    g, g_residual = torch.randn(8, 16, 16, device=device), torch.randn(8, 16, 16, device=device)
    y, x_residual = RMSNormWithResidual.apply(x)
    (y * g + x_residual * g_residual).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    y_ref = rmsnorm_reference(x_ref)
    (y_ref * g + x_ref * g_residual).sum().backward()
    return {"forward": (y - y_ref).abs().max().item(), "backward": (x.grad - x_ref.grad).abs().max().item()}


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("rmsnorm", check, bench))
