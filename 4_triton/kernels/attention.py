"""Causal multi-head self-attention, one program per (document, head), one kernel per direction.

Naive PyTorch: scores = q k^T / sqrt(D), mask, softmax, y = P v is five or more kernels,
and the (H, T, T) score and probability arrays go to memory and back between them. At
T <= 16 and D = 4 a whole head -- q, k, v (T x D each) and its T x T scores -- fits in one
program's registers, so one kernel does it all and memory sees only qkv in and y out.
In a batch each (document, head) is its own program: documents never attend to each other.

Plain softmax, not the online (flash) form: online softmax exists to stream K and V in
blocks when a row of scores does not fit on chip. Here the whole row fits, so one max and
one sum per row are simpler and exact. As in FlashAttention, forward saves only the
per-row log-sum-exp; backward recomputes P from it instead of storing (H, T, T).

D = 4 is below tl.dot's minimum of 16, so the small products are broadcast-multiply-and-
sum: q[:, None, :] * k[None, :, :] summed over D is q k^T.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/attention.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402
from kernels.launch import ensure_contiguous  # noqa: E402


def attention_reference(qkv, n_head):
    """qkv (..., T, 3C) -> y (..., T, C); documents (leading dimensions) never see each other."""
    *lead, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = (t.reshape(*lead, T, n_head, C // n_head).transpose(-3, -2) for t in qkv.split(C, dim=-1))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(-3, -2).reshape(*lead, T, C)


@triton.jit
def _load_head(qkv_ptr, T, C, D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's document b and head h, its row offset b * T, its row and column indices,
    their mask, its q, k, v (BLOCK_T, BLOCK_D), zero outside the mask, and its scores
    s = q k^T / sqrt(D)."""
    b, h = tl.program_id(0), tl.program_id(1)
    rows = tl.arange(0, BLOCK_T)
    dims = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < T) & (dims[None, :] < D)
    base = qkv_ptr + (b * T + rows[:, None]) * (3 * C) + h * D + dims[None, :]
    q = tl.load(base, mask=mask, other=0.0)
    k = tl.load(base + C, mask=mask, other=0.0)
    v = tl.load(base + 2 * C, mask=mask, other=0.0)
    scale = 1.0 / tl.sqrt(tl.full([1], D, q.dtype))  # made in q's dtype: a float argument would be fp32
    s = tl.sum(q[:, None, :] * k[None, :, :], axis=2) * scale  # (T, T): s[i, j] = q_i . k_j / sqrt(D)
    return b, h, rows, dims, mask, q, k, v, s


@triton.jit
def attention_fwd_kernel(
    qkv_ptr,  # (B, T, 3C): [q | k | v], head h at columns h*D .. h*D+D-1 of each third
    y_ptr,  # (B, T, C) output
    lse_ptr,  # (B, H, T) output: log-sum-exp of each row of scores, saved for backward
    T, C, H,
    D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    b, h, rows, dims, mask, q, k, v, s = _load_head(qkv_ptr, T, C, D, BLOCK_T, BLOCK_D)
    causal = (rows[None, :] <= rows[:, None]) & (rows[None, :] < T)
    s = tl.where(causal, s, float("-inf"))
    row_max = tl.max(s, axis=1)
    p = tl.exp(s - row_max[:, None])
    row_sum = tl.sum(p, axis=1)
    p = p / row_sum[:, None]
    y = tl.sum(p[:, :, None] * v[None, :, :], axis=1)  # (T, D): y_i = sum_j p_ij v_j
    tl.store(y_ptr + (b * T + rows[:, None]) * C + h * D + dims[None, :], y, mask=mask)
    tl.store(lse_ptr + (b * H + h) * T + rows, row_max + tl.log(row_sum), mask=rows < T)


# Backward, per head, with g = dL/dy, P = softmax(S), S = q k^T / sqrt(D):
#     dv = P^T g                                      (y = P v)
#     dP = g v^T
#     dS = P * (dP - delta),  delta_i = sum_j P_ij dP_ij = g_i . y_i    (softmax Jacobian)
#     dq = dS k / sqrt(D),    dk = dS^T q / sqrt(D)
# P is recomputed from q, k and the saved log-sum-exp: P = exp(S - lse).
@triton.jit
def attention_bwd_kernel(
    qkv_ptr,  # (B, T, 3C) forward input
    y_ptr,  # (B, T, C) forward output, for delta
    lse_ptr,  # (B, H, T) log-sum-exp saved by the forward
    g_ptr,  # (B, T, C) gradient of the loss with respect to y
    dqkv_ptr,  # (B, T, 3C) output, laid out like qkv
    T, C, H,
    D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    b, h, rows, dims, mask, q, k, v, s = _load_head(qkv_ptr, T, C, D, BLOCK_T, BLOCK_D)
    scale = 1.0 / tl.sqrt(tl.full([1], D, q.dtype))
    out_offsets = (b * T + rows[:, None]) * C + h * D + dims[None, :]
    y = tl.load(y_ptr + out_offsets, mask=mask, other=0.0)
    g = tl.load(g_ptr + out_offsets, mask=mask, other=0.0)
    lse = tl.load(lse_ptr + (b * H + h) * T + rows, mask=rows < T, other=0.0)
    causal = (rows[None, :] <= rows[:, None]) & (rows[None, :] < T) & (rows[:, None] < T)
    p = tl.where(causal, tl.exp(s - lse[:, None]), 0.0)  # (T, T)
    dv = tl.sum(p[:, :, None] * g[:, None, :], axis=0)  # (T, D): dv_j = sum_i p_ij g_i
    dp = tl.sum(g[:, None, :] * v[None, :, :], axis=2)  # (T, T): dp_ij = g_i . v_j
    delta = tl.sum(g * y, axis=1)  # (T,)
    ds = p * (dp - delta[:, None]) * scale
    dq = tl.sum(ds[:, :, None] * k[None, :, :], axis=1)  # dq_i = sum_j ds_ij k_j
    dk = tl.sum(ds[:, :, None] * q[:, None, :], axis=0)  # dk_j = sum_i ds_ij q_i
    d_base = dqkv_ptr + (b * T + rows[:, None]) * (3 * C) + h * D + dims[None, :]
    tl.store(d_base, dq, mask=mask)
    tl.store(d_base + C, dk, mask=mask)
    tl.store(d_base + 2 * C, dv, mask=mask)


def _shape(qkv, n_head):
    """(B, T, C, D) of qkv (..., T, 3C): every leading dimension counts as documents."""
    T, C = qkv.shape[-2], qkv.shape[-1] // 3
    return qkv.numel() // (T * 3 * C), T, C, C // n_head


def attention_forward(qkv, n_head):
    B, T, C, D = _shape(qkv, n_head)
    y = torch.empty((*qkv.shape[:-1], C), device=qkv.device, dtype=qkv.dtype)
    lse = torch.empty((B, n_head, T), device=qkv.device, dtype=qkv.dtype)
    plan = launch.per_head(B, n_head, T, D)
    attention_fwd_kernel[plan.grid](qkv, y, lse, T, C, n_head, D=D, **plan.meta)
    return y, lse


def attention_backward(qkv, y, lse, g, n_head):
    B, T, C, D = _shape(qkv, n_head)
    dqkv = torch.empty_like(qkv)
    plan = launch.per_head(B, n_head, T, D)
    attention_bwd_kernel[plan.grid](qkv, y, lse, g, dqkv, T, C, n_head, D=D, **plan.meta)
    return dqkv


class CausalAttention(torch.autograd.Function):
    """Multi-head causal self-attention from the stacked projections qkv (B, T, 3C) -> y (B, T, C).
    Forward saves qkv, y and the log-sum-exp of each row; backward recomputes P from them."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, qkv, n_head):
        y, lse = attention_forward(qkv, n_head)
        ctx.save_for_backward(qkv, y, lse)
        ctx.n_head = n_head
        return y

    @staticmethod
    @ensure_contiguous
    def backward(ctx, g):
        qkv, y, lse = ctx.saved_tensors
        return attention_backward(qkv, y, lse, g, ctx.n_head), None


def bench(T=16, n_head=4, head_dim=4, device="cuda"):
    qkv = torch.randn(T, 3 * n_head * head_dim, device=device)
    ours = triton.testing.do_bench(lambda: attention_forward(qkv, n_head))
    torch_ms = triton.testing.do_bench(lambda: attention_reference(qkv, n_head))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """All four heads of the model's attention (T 16, head_dim 4) for a batch of 3 documents,
    forward and backward."""
    qkv = torch.randn(3, 16, 48, device=device, requires_grad=True)
    g = torch.randn(3, 16, 16, device=device)
    y = CausalAttention.apply(qkv, 4)
    y.backward(g)
    ref = qkv.detach().clone().requires_grad_()
    y_ref = attention_reference(ref, 4)
    y_ref.backward(g)
    return {"forward": (y - y_ref).abs().max().item(), "backward": (qkv.grad - ref.grad).abs().max().item()}


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("attention", check, bench))
