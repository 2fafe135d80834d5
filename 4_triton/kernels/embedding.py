"""Token + position embedding: x[b, t] = wte[tokens[b, t]] + wpe[t], for B documents of T rows.

Naive PyTorch: `wte[tokens] + wpe[:T]` is two kernels -- a gather that writes a (B, T, C)
temporary, then an add that reads it back with the positions and writes x: three passes
through memory where one suffices. The fused kernel reads each needed row once and writes
x once. Its backward is a scatter-add; the usual way is atomics into a zeroed gradient,
which is nondeterministic in float (the order of the adds changes from run to run). Here
each program owns one row of the gradient and sums, in a fixed order, the positions of its
share of the batch that picked it (a large batch is shared among several programs, whose
partial sums are then added in order), so there are no atomics and no zeroing.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/embedding.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402
from kernels.launch import ensure_contiguous  # noqa: E402
from kernels.partials import sum_partials  # noqa: E402


def embedding_reference(tokens, wte, wpe):
    return wte[tokens] + wpe[:tokens.shape[-1]]


@triton.jit
def embedding_fwd_kernel(
    tokens_ptr,  # (M,) int32 token ids, M = B * T: B documents of T rows; padded rows hold any valid id
    wte_ptr,  # (V, C) token embedding table
    wpe_ptr,  # (block_size, C) position embedding table
    x_ptr,  # (M, C) output
    M, T, C,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < M) & (cols[None, :] < C)
    tok = tl.load(tokens_ptr + rows, mask=rows < M, other=0)
    emb = tl.load(wte_ptr + tok[:, None] * C + cols[None, :], mask=mask, other=0.0)
    pos = tl.load(wpe_ptr + (rows % T)[:, None] * C + cols[None, :], mask=mask, other=0.0)  # row's position
    tl.store(x_ptr + rows[:, None] * C + cols[None, :], emb + pos, mask=mask)


# Backward. x[b, t] depends on wte[tokens[b, t]] and wpe[t] with derivative 1, so over the
# batch, counting only real rows (t < n_b, document b's length):
#     d_wte[v] = sum over real (b, t) with tokens[b, t] == v of g[b, t]      (a scatter-add)
#     d_wpe[t] = sum over documents b with t < n_b of g[b, t]
# Program (j, p) computes row j of [d_wte; d_wpe] -- j < V: token j, else position j - V --
# over rows chunk p of the batch, each in a fixed order: no atomics, so the sums are the same
# bits on every run, and every row of both gradients is written, so neither buffer needs
# zeroing first. A large batch has several chunks; their partial sums are then added in
# order (kernels/partials.py).
@triton.jit
def embedding_bwd_kernel(
    tokens_ptr,  # (M,) int32 token ids, M = B * T
    n_ptr,  # (B,) int32: document b's rows t < n_b are real, the rest padding
    g_ptr,  # (M, C) gradient of the loss with respect to x
    d_wte_ptr,  # (V, C) output: gradient of wte (with several chunks: (S, V + block_size, C) partials)
    d_wpe_ptr,  # (block_size, C) output: gradient of wpe (with several chunks: unused)
    M, T, C, V, ROWS,  # this program sums rows p * ROWS .. p * ROWS + ROWS - 1
    PARTIALS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    j, chunk = tl.program_id(0), tl.program_id(1)
    cols = tl.arange(0, BLOCK_C)
    acc = tl.zeros((BLOCK_C,), dtype=d_wte_ptr.dtype.element_ty)
    first = chunk * ROWS
    for m0 in range(first, tl.minimum(first + ROWS, M), BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        n = tl.load(n_ptr + rows // T, mask=rows < M, other=0)
        live = (rows < M) & (rows % T < n)
        tok = tl.load(tokens_ptr + rows, mask=live, other=-1)
        pick = live & tl.where(j < V, tok == j, rows % T == j - V)  # token j, or position j - V
        g_rows = tl.load(g_ptr + rows[:, None] * C + cols[None, :], mask=pick[:, None] & (cols[None, :] < C),
                         other=0.0)
        acc += tl.sum(g_rows, axis=0)
    if PARTIALS:  # row j of this chunk's slice of the partials
        tl.store(d_wte_ptr + (chunk.to(tl.int64) * tl.num_programs(0) + j) * C + cols, acc, mask=cols < C)
    elif j < V:
        tl.store(d_wte_ptr + j * C + cols, acc, mask=cols < C)
    else:
        tl.store(d_wpe_ptr + (j - V) * C + cols, acc, mask=cols < C)


def embedding_forward(tokens, wte, wpe):
    """tokens (..., T) int32 -> x (..., T, C): any leading shape, e.g. (B, T) or (T,)."""
    M, T, C = tokens.numel(), tokens.shape[-1], wte.shape[1]
    x = torch.empty((*tokens.shape, C), device=wte.device, dtype=wte.dtype)
    plan = launch.rows(M, C)
    embedding_fwd_kernel[plan.grid](tokens, wte, wpe, x, M, T, C, **plan.meta)
    return x


def embedding_backward(tokens, n, g, d_wte, d_wpe):
    """n: (B,) int32 lengths, one per document. Writes d_wte and d_wpe."""
    M, T, C = tokens.numel(), tokens.shape[-1], g.shape[-1]
    V, block_size = d_wte.shape[0], d_wpe.shape[0]
    plan = launch.summed_rows(M, C, V + block_size)  # a large batch's rows shared among programs
    programs = plan.grid[-1]
    partials = None if programs == 1 else torch.empty((programs, V + block_size, C), device=g.device, dtype=g.dtype)
    embedding_bwd_kernel[plan.grid](
        tokens, n, g, d_wte if partials is None else partials, d_wpe, M, T, C, V, plan.rows_each,
        PARTIALS=partials is not None, **plan.meta)
    if partials is not None:
        sum_partials(partials, d_wte, d_wpe)


class Embedding(torch.autograd.Function):
    """x = wte[tokens] + wpe[:T]; backward writes d_wte, d_wpe (weights get None)."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, tokens, n, wte, wpe, d_wte, d_wpe):
        ctx.save_for_backward(tokens, n)
        ctx.grads = (d_wte, d_wpe)
        return embedding_forward(tokens, wte, wpe)

    @staticmethod
    @ensure_contiguous
    def backward(ctx, g):
        tokens, n = ctx.saved_tensors
        embedding_backward(tokens, n, g, *ctx.grads)
        return None, None, None, None, None, None


def bench(T=16, C=16, V=27, device="cuda"):
    """Median microseconds of the fused kernel and of the two-kernel PyTorch version."""
    tokens = torch.randint(0, V, (T,), device=device, dtype=torch.int32)
    wte, wpe = torch.randn(V, C, device=device), torch.randn(T, C, device=device)
    ours = triton.testing.do_bench(lambda: embedding_forward(tokens, wte, wpe))
    torch_ms = triton.testing.do_bench(lambda: embedding_reference(tokens.long(), wte, wpe))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """Forward and backward at the model's shape for a batch of three documents of 9, 16 and 1
    real rows, each padded to 16, against the reference."""
    B, T, C, V, lengths = 3, 16, 16, 27, [9, 16, 1]
    tokens = torch.randint(0, V, (B, T), device=device, dtype=torch.int32)
    wte = torch.randn(V, C, device=device, requires_grad=True)
    wpe = torch.randn(T, C, device=device, requires_grad=True)
    d_wte, d_wpe = torch.empty_like(wte), torch.empty_like(wpe)
    x = Embedding.apply(tokens, torch.tensor(lengths, device=device, dtype=torch.int32), wte, wpe, d_wte, d_wpe)
    g = torch.randn(B, T, C, device=device)
    x.backward(g)
    wte_ref, wpe_ref = wte.detach().clone().requires_grad_(), wpe.detach().clone().requires_grad_()
    x_ref = embedding_reference(tokens.long(), wte_ref, wpe_ref)
    real = (torch.arange(T, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None])[..., None]
    x_ref.backward(g * real)  # rows past a document's length are padding: no gradient
    backward = max((d_wte - wte_ref.grad).abs().max().item(), (d_wpe - wpe_ref.grad).abs().max().item())
    return {"forward": (x - x_ref).abs().max().item(), "backward": backward}


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("embedding", check, bench))
