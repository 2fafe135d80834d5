"""Linear layer y = act(x W^T) (+ residual), with W stored (n_out, n_in) as in SPEC.md.

Naive PyTorch: `F.relu(x @ w.T)` and `res + x @ w.T` are two kernels each: the matmul
writes y to memory and the ReLU or the add reads it straight back. Here both are an
epilogue of the matmul, applied while the tile is still in registers. In backward the
ReLU mask is applied as g is loaded, and the residual's gradient is g itself, handed
back untouched.

Tensor cores (`tl.dot`) want every tile dimension >= 16 (and K >= 8 for float32). A batch
has B * T rows (T = 16), n_in is 16 or 64 and n_out 16, 48, 64 or 27, so tiles are up to
64 rows and padded to 16 with masked loads (the padding is zeros and adds nothing).
`input_precision="ieee"` keeps float32 exact instead of TF32, so the losses match
PyTorch's float32 run.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/linear.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402
from kernels.launch import ensure_contiguous  # noqa: E402
from kernels.partials import sum_partials  # noqa: E402


def linear_reference(x, w, residual=None, relu=False):
    y = x @ w.T
    y = torch.relu(y) if relu else y
    return y if residual is None else residual + y


@triton.jit
def linear_fwd_kernel(
    x_ptr,  # (M, K) input rows: M = B * T for a batch
    w_ptr,  # (N, K) weight, one row per output
    res_ptr,  # (M, N) residual added to the output (if HAS_RESIDUAL)
    y_ptr,  # (M, N) output
    M, N, K,
    RELU: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=y_ptr.dtype.element_ty)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        w = tl.load(w_ptr + cols[:, None] * K + ks[None, :], mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(x, tl.trans(w), input_precision="ieee")
    if RELU:
        acc = tl.maximum(acc, 0.0)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    if HAS_RESIDUAL:
        acc += tl.load(res_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], acc, mask=mask)


# Backward of y = act(x W^T) with g = dL/dy. Let g' = g * (y > 0) with the ReLU (a ReLU
# passes gradient only where its output is positive), else g' = g. Then
#     dL/dx = g' W        (M, N) @ (N, K)     -- this kernel, one program per (M, K) tile
#     dL/dW = g'^T x      (N, M) @ (M, K)     -- the next one, one program per (N, K) tile
# and dL/dresidual = g. dL/dW sums over all M rows, every document of the batch: each
# program walks its rows in a fixed order, a large batch's rows split among programs whose
# partial sums are added in order (kernels/partials.py), so no two programs add into the same
# number and the sum is the same bits on every run (atomics would add in whatever order they
# land).
@triton.jit
def _load_grad(g_ptr, y_ptr, rows, ns, M, N, RELU: tl.constexpr):
    """The (rows, ns) tile of g = dL/dy, and with the ReLU, g * (y > 0): zero where the ReLU was off."""
    mask = (rows[:, None] < M) & (ns[None, :] < N)
    g = tl.load(g_ptr + rows[:, None] * N + ns[None, :], mask=mask, other=0.0)
    if RELU:
        y = tl.load(y_ptr + rows[:, None] * N + ns[None, :], mask=mask, other=0.0)
        g = tl.where(y > 0, g, 0.0)
    return g


@triton.jit
def linear_bwd_dx_kernel(
    g_ptr,  # (M, N) gradient of the loss with respect to y
    y_ptr,  # (M, N) forward output, for the ReLU mask (if RELU)
    w_ptr,  # (N, K) weight
    dx_ptr,  # (M, K) output
    M, N, K,
    RELU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=dx_ptr.dtype.element_ty)
    for n0 in range(0, N, BLOCK_N):
        ns = n0 + tl.arange(0, BLOCK_N)
        g = _load_grad(g_ptr, y_ptr, rows, ns, M, N, RELU)
        w = tl.load(w_ptr + ns[:, None] * K + ks[None, :], mask=(ns[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(g, w, input_precision="ieee")
    tl.store(dx_ptr + rows[:, None] * K + ks[None, :], acc, mask=(rows[:, None] < M) & (ks[None, :] < K))


@triton.jit
def linear_bwd_dw_kernel(
    g_ptr,  # (M, N) gradient of the loss with respect to y
    y_ptr,  # (M, N) forward output, for the ReLU mask (if RELU)
    x_ptr,  # (M, K) forward input
    dw_ptr,  # (S, N, K) output: program p's sum over its rows (S = 1: the weight's gradient, in place)
    M, N, K, ROWS,  # this program sums rows p * ROWS .. p * ROWS + ROWS - 1
    RELU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    ns = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    first = tl.program_id(2) * ROWS
    dw = tl.zeros((BLOCK_N, BLOCK_K), dtype=dw_ptr.dtype.element_ty)
    for m0 in range(first, tl.minimum(first + ROWS, M), BLOCK_M):  # this program's rows, in order
        rows = m0 + tl.arange(0, BLOCK_M)
        g = _load_grad(g_ptr, y_ptr, rows, ns, M, N, RELU)
        x = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        dw += tl.dot(tl.trans(g), x, input_precision="ieee")  # (BLOCK_N, BLOCK_K)
    out = dw_ptr + tl.program_id(2).to(tl.int64) * N * K  # (64-bit: S x N x K may pass 2^31)
    tl.store(out + ns[:, None] * K + ks[None, :], dw, mask=(ns[:, None] < N) & (ks[None, :] < K))


def linear_forward(x, w, residual=None, relu=False):
    """x (..., K) -> y (..., N), any leading shape: (B, T, K) rows are B * T rows."""
    # Backward reads the ReLU mask off the saved output (y > 0), which a residual added
    # after the ReLU would blur; the model never needs both in one layer.
    if relu and residual is not None:
        raise ValueError("linear_forward: relu and residual together are not supported")
    K, N = x.shape[-1], w.shape[0]
    M = x.numel() // K
    y = torch.empty((*x.shape[:-1], N), device=x.device, dtype=x.dtype)
    plan = launch.matmul(M, N, K, over="MN")
    linear_fwd_kernel[plan.grid](x, w, y if residual is None else residual, y, M, N, K, RELU=relu,
                                 HAS_RESIDUAL=residual is not None, **plan.meta)
    return y


def linear_backward(g, x, w, y, dw, relu=False):
    """dL/dx (returned) and dL/dW (written into `dw`)."""
    K, N = x.shape[-1], w.shape[0]
    M = x.numel() // K
    dx = torch.empty_like(x)
    plan = launch.matmul(M, N, K, over="MK")
    linear_bwd_dx_kernel[plan.grid](g, y, w, dx, M, N, K, RELU=relu, **plan.meta)
    # dW sums all M rows: one program per (N, K) tile while M is small, else S
    # programs per tile, each over its own rows, and an ordered sum of their partials.
    plan = launch.matmul(M, N, K, over="NK")
    programs = plan.grid[-1]
    partials = dw if programs == 1 else torch.empty((programs, *dw.shape), device=dw.device, dtype=dw.dtype)
    linear_bwd_dw_kernel[plan.grid](g, y, x, partials, M, N, K, plan.rows_each, RELU=relu, **plan.meta)
    if programs > 1:
        sum_partials(partials, dw)
    return dx


class Linear(torch.autograd.Function):
    """y = act(x W^T) (+ residual); backward writes dW into `dw` and returns None for W."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, x, w, dw, residual=None, relu=False):
        y = linear_forward(x, w, residual, relu)
        ctx.save_for_backward(x, w, y)
        ctx.dw, ctx.relu, ctx.has_residual = dw, relu, residual is not None
        return y

    @staticmethod
    @ensure_contiguous
    def backward(ctx, g):
        x, w, y = ctx.saved_tensors
        dx = linear_backward(g, x, w, y, ctx.dw, ctx.relu)
        return dx, None, None, (g if ctx.has_residual else None), None


def bench(T=16, K=16, N=64, device="cuda"):
    x, w = torch.randn(T, K, device=device), torch.randn(N, K, device=device)
    ours = triton.testing.do_bench(lambda: linear_forward(x, w, relu=True))
    torch_ms = triton.testing.do_bench(lambda: linear_reference(x, w, relu=True))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """fc1 (ReLU epilogue) and fc2 (residual epilogue) at the model's shapes for a batch of 8
    documents (128 rows: two row tiles, so dW sums across programs' tiles), forward and backward."""
    errors = {}
    B, T = 8, 16
    for name, (N, K, relu, residual) in {"fc1": (64, 16, True, False), "fc2": (16, 64, False, True)}.items():
        x, w = torch.randn(B, T, K, device=device, requires_grad=True), torch.randn(N, K, device=device)
        res = torch.randn(B, T, N, device=device, requires_grad=True) if residual else None
        dw, g = torch.empty_like(w), torch.randn(B, T, N, device=device)
        y = Linear.apply(x, w, dw, res, relu)
        y.backward(g)
        x_ref, w_ref = x.detach().clone().requires_grad_(), w.clone().requires_grad_()
        y_ref = linear_reference(x_ref, w_ref, None if res is None else res.detach(), relu)
        y_ref.backward(g)
        errors[f"{name} forward"] = (y - y_ref).abs().max().item()
        errors[f"{name} backward"] = max((x.grad - x_ref.grad).abs().max().item(), (dw - w_ref.grad).abs().max().item())
    return errors


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("linear", check, bench, tolerance=1e-4))  # sums of up to 64 products of size ~1
