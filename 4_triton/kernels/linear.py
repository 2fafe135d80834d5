"""Linear layer y = act(x W^T) (+ residual), with W stored (n_out, n_in) as in SPEC.md.

Naive PyTorch: `F.relu(x @ w.T)` and `res + x @ w.T` are two kernels each: the matmul
writes y to memory and the ReLU or the add reads it straight back. Here both are an
epilogue of the matmul, applied while the tile is still in registers. In backward the
ReLU mask is applied as g is loaded, and the residual's gradient is g itself, handed
back untouched.

Tensor cores (`tl.dot`) want every tile dimension >= 16 (and K >= 8 for float32). T <= 16,
n_in is 16 or 64 and n_out 16, 48, 64 or 27, so tiles are padded to 16 with masked loads
(the padding is zeros and adds nothing). `input_precision="ieee"` keeps float32 exact
instead of TF32, so the losses match PyTorch's float32 run.
"""

import os
import sys
from pathlib import Path

import torch

if __name__ == "__main__" and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # run on its own without a GPU: through Triton's interpreter
import triton  # noqa: E402
import triton.language as tl  # noqa: E402


def linear_reference(x, w, residual=None, relu=False):
    y = x @ w.T
    y = torch.relu(y) if relu else y
    return y if residual is None else residual + y


def _block(n):
    return max(16, triton.next_power_of_2(n))


@triton.jit
def linear_fwd_kernel(
    x_ptr,  # (T, K) input rows
    w_ptr,  # (N, K) weight, one row per output
    res_ptr,  # (T, N) residual added to the output (if HAS_RESIDUAL)
    y_ptr,  # (T, N) output
    T, N, K,
    RELU: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.arange(0, BLOCK_T)
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_T, BLOCK_N), dtype=y_ptr.dtype.element_ty)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=(rows[:, None] < T) & (ks[None, :] < K), other=0.0)
        w = tl.load(w_ptr + cols[:, None] * K + ks[None, :], mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(x, tl.trans(w), input_precision="ieee")
    if RELU:
        acc = tl.maximum(acc, 0.0)
    mask = (rows[:, None] < T) & (cols[None, :] < N)
    if HAS_RESIDUAL:
        acc += tl.load(res_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], acc, mask=mask)


# Backward of y = act(x W^T) with g = dL/dy. Let g' = g * (y > 0) with the ReLU (a ReLU
# passes gradient only where its output is positive), else g' = g. Then
#     dL/dx = g' W        (T, N) @ (N, K)     -- this kernel, one program per K tile
#     dL/dW = g'^T x      (N, T) @ (T, K)     -- the next one, one program per (N, K) tile
# and dL/dresidual = g.
@triton.jit
def _load_grad(g_ptr, y_ptr, rows, ns, T, N, RELU: tl.constexpr):
    """The (rows, ns) tile of g = dL/dy, and with the ReLU, g * (y > 0): zero where the ReLU was off."""
    mask = (rows[:, None] < T) & (ns[None, :] < N)
    g = tl.load(g_ptr + rows[:, None] * N + ns[None, :], mask=mask, other=0.0)
    if RELU:
        y = tl.load(y_ptr + rows[:, None] * N + ns[None, :], mask=mask, other=0.0)
        g = tl.where(y > 0, g, 0.0)
    return g


@triton.jit
def linear_bwd_dx_kernel(
    g_ptr,  # (T, N) gradient of the loss with respect to y
    y_ptr,  # (T, N) forward output, for the ReLU mask (if RELU)
    w_ptr,  # (N, K) weight
    dx_ptr,  # (T, K) output
    T, N, K,
    RELU: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.arange(0, BLOCK_T)
    ks = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_T, BLOCK_K), dtype=dx_ptr.dtype.element_ty)
    for n0 in range(0, N, BLOCK_N):
        ns = n0 + tl.arange(0, BLOCK_N)
        g = _load_grad(g_ptr, y_ptr, rows, ns, T, N, RELU)
        w = tl.load(w_ptr + ns[:, None] * K + ks[None, :], mask=(ns[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(g, w, input_precision="ieee")
    tl.store(dx_ptr + rows[:, None] * K + ks[None, :], acc, mask=(rows[:, None] < T) & (ks[None, :] < K))


@triton.jit
def linear_bwd_dw_kernel(
    g_ptr,  # (T, N) gradient of the loss with respect to y
    y_ptr,  # (T, N) forward output, for the ReLU mask (if RELU)
    x_ptr,  # (T, K) forward input
    dw_ptr,  # (N, K) output: the weight's gradient, written in place in the flat buffer
    T, N, K,
    RELU: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.arange(0, BLOCK_T)
    ns = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    g = _load_grad(g_ptr, y_ptr, rows, ns, T, N, RELU)
    x = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=(rows[:, None] < T) & (ks[None, :] < K), other=0.0)
    dw = tl.dot(tl.trans(g), x, input_precision="ieee")  # (BLOCK_N, BLOCK_K)
    tl.store(dw_ptr + ns[:, None] * K + ks[None, :], dw, mask=(ns[:, None] < N) & (ks[None, :] < K))


def linear_forward(x, w, residual=None, relu=False):
    # Backward reads the ReLU mask off the saved output (y > 0), which a residual added
    # after the ReLU would blur; the model never needs both in one layer.
    if relu and residual is not None:
        raise ValueError("linear_forward: relu and residual together are not supported")
    T, K = x.shape
    N = w.shape[0]
    y = torch.empty((T, N), device=x.device, dtype=x.dtype)
    block_n = min(_block(N), 64)
    linear_fwd_kernel[(triton.cdiv(N, block_n),)](
        x, w, y if residual is None else residual, y, T, N, K, RELU=relu, HAS_RESIDUAL=residual is not None,
        BLOCK_T=_block(T), BLOCK_N=block_n, BLOCK_K=min(_block(K), 64))
    return y


def linear_backward(g, x, w, y, dw, relu=False):
    """dL/dx (returned) and dL/dW (written into `dw`)."""
    T, K = x.shape
    N = w.shape[0]
    dx = torch.empty_like(x)
    block_k, block_n = min(_block(K), 64), min(_block(N), 64)
    linear_bwd_dx_kernel[(triton.cdiv(K, block_k),)](g, y, w, dx, T, N, K, RELU=relu, BLOCK_T=_block(T),
                                                     BLOCK_N=block_n, BLOCK_K=block_k)
    linear_bwd_dw_kernel[(triton.cdiv(N, block_n), triton.cdiv(K, block_k))](
        g, y, x, dw, T, N, K, RELU=relu, BLOCK_T=_block(T), BLOCK_N=block_n, BLOCK_K=block_k)
    return dx


class Linear(torch.autograd.Function):
    """y = act(x W^T) (+ residual); backward writes dW into `dw` and returns None for W."""

    @staticmethod
    def forward(ctx, x, w, dw, residual=None, relu=False):
        y = linear_forward(x, w, residual, relu)
        ctx.save_for_backward(x, w, y)
        ctx.dw, ctx.relu, ctx.has_residual = dw, relu, residual is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved_tensors
        g = g.contiguous()
        dx = linear_backward(g, x, w, y, ctx.dw, ctx.relu)
        return dx, None, None, (g if ctx.has_residual else None), None


def bench(T=16, K=16, N=64, device="cuda"):
    x, w = torch.randn(T, K, device=device), torch.randn(N, K, device=device)
    ours = triton.testing.do_bench(lambda: linear_forward(x, w, relu=True))
    torch_ms = triton.testing.do_bench(lambda: linear_reference(x, w, relu=True))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """fc1 (ReLU epilogue) and fc2 (residual epilogue) at the model's shapes, forward and backward."""
    errors = {}
    for name, (N, K, relu, residual) in {"fc1": (64, 16, True, False), "fc2": (16, 64, False, True)}.items():
        x, w = torch.randn(16, K, device=device, requires_grad=True), torch.randn(N, K, device=device)
        res = torch.randn(16, N, device=device, requires_grad=True) if residual else None
        dw, g = torch.empty_like(w), torch.randn(16, N, device=device)
        y = Linear.apply(x, w, dw, res, relu)
        y.backward(g)
        x_ref, w_ref = x.detach().clone().requires_grad_(), w.clone().requires_grad_()
        y_ref = linear_reference(x_ref, w_ref, None if res is None else res.detach(), relu)
        y_ref.backward(g)
        errors[f"{name} forward"] = (y - y_ref).abs().max().item()
        errors[f"{name} backward"] = max((x.grad - x_ref.grad).abs().max().item(), (dw - w_ref.grad).abs().max().item())
    return errors


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("linear", check, bench, tolerance=1e-4))  # sums of up to 64 products of size ~1
