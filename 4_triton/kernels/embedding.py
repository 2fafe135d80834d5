"""Token + position embedding: x[t] = wte[tokens[t]] + wpe[t].

Naive PyTorch: `wte[tokens] + wpe[:T]` is two kernels -- a gather that writes a (T, C)
temporary, then an add that reads it back with the positions and writes x: three (T, C)
passes through memory where one suffices. The fused kernel reads each needed row once
and writes x once. Its backward is a scatter-add; the usual way is atomics into a zeroed
gradient, which is nondeterministic in float. Here each program owns one row of the
gradient and sums the positions that picked it, so there are no atomics and no zeroing.
"""

import os
import sys
from pathlib import Path

import torch

if __name__ == "__main__" and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # run on its own without a GPU: through Triton's interpreter
import triton  # noqa: E402
import triton.language as tl  # noqa: E402


def embedding_reference(tokens, wte, wpe):
    return wte[tokens] + wpe[:tokens.shape[0]]


@triton.jit
def embedding_fwd_kernel(
    tokens_ptr,  # (T,) int32 token ids; padded rows hold any valid id
    wte_ptr,  # (V, C) token embedding table
    wpe_ptr,  # (block_size, C) position embedding table
    x_ptr,  # (T, C) output
    T, C,
    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < T) & (cols[None, :] < C)
    tok = tl.load(tokens_ptr + rows, mask=rows < T, other=0)
    emb = tl.load(wte_ptr + tok[:, None] * C + cols[None, :], mask=mask, other=0.0)
    pos = tl.load(wpe_ptr + rows[:, None] * C + cols[None, :], mask=mask, other=0.0)
    tl.store(x_ptr + rows[:, None] * C + cols[None, :], emb + pos, mask=mask)


# Backward. x[t] depends on wte[tokens[t]] and wpe[t] with derivative 1, so
#     d_wte[v] = sum over t < n with tokens[t] == v of g[t]        (a scatter-add)
#     d_wpe[t] = g[t] for t < n, and 0 for the positions the document did not reach.
# Program p < V computes row p of d_wte; program V + t computes row t of d_wpe. Every row
# of both gradients is written, so neither buffer needs zeroing first.
@triton.jit
def embedding_bwd_kernel(
    tokens_ptr,  # (T,) int32 token ids
    n_ptr,  # (1,) int32: rows < n are real, the rest padding
    g_ptr,  # (T, C) gradient of the loss with respect to x
    d_wte_ptr,  # (V, C) output: gradient of wte
    d_wpe_ptr,  # (block_size, C) output: gradient of wpe
    T, C, V,
    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    n = tl.load(n_ptr)
    rows = tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_C)
    live = (rows < T) & (rows < n)
    if pid < V:
        tok = tl.load(tokens_ptr + rows, mask=live, other=-1)
        pick = live & (tok == pid)
        g_rows = tl.load(g_ptr + rows[:, None] * C + cols[None, :], mask=pick[:, None] & (cols[None, :] < C),
                         other=0.0)
        tl.store(d_wte_ptr + pid * C + cols, tl.sum(g_rows, axis=0), mask=cols < C)
    else:  # (a variable keeps one shape across both branches on a GPU, hence the new names)
        t = pid - V
        g_row = tl.load(g_ptr + t * C + cols, mask=(cols < C) & (t < T) & (t < n), other=0.0)
        tl.store(d_wpe_ptr + t * C + cols, g_row, mask=cols < C)


def embedding_forward(tokens, wte, wpe):
    T, C = tokens.shape[0], wte.shape[1]
    x = torch.empty((T, C), device=wte.device, dtype=wte.dtype)
    embedding_fwd_kernel[(1,)](tokens, wte, wpe, x, T, C,
                               BLOCK_T=triton.next_power_of_2(T), BLOCK_C=triton.next_power_of_2(C))
    return x


def embedding_backward(tokens, n, g, d_wte, d_wpe):
    T, C = g.shape
    V, block_size = d_wte.shape[0], d_wpe.shape[0]
    embedding_bwd_kernel[(V + block_size,)](tokens, n, g, d_wte, d_wpe, T, C, V,
                                            BLOCK_T=triton.next_power_of_2(T), BLOCK_C=triton.next_power_of_2(C))


class Embedding(torch.autograd.Function):
    """x = wte[tokens] + wpe[:T]; backward writes d_wte, d_wpe (weights get None)."""

    @staticmethod
    def forward(ctx, tokens, n, wte, wpe, d_wte, d_wpe):
        ctx.save_for_backward(tokens, n)
        ctx.grads = (d_wte, d_wpe)
        return embedding_forward(tokens, wte, wpe)

    @staticmethod
    def backward(ctx, g):
        tokens, n = ctx.saved_tensors
        embedding_backward(tokens, n, g.contiguous(), *ctx.grads)
        return None, None, None, None, None, None


def bench(T=16, C=16, V=27, device="cuda"):
    """Median microseconds of the fused kernel and of the two-kernel PyTorch version."""
    tokens = torch.randint(0, V, (T,), device=device, dtype=torch.int32)
    wte, wpe = torch.randn(V, C, device=device), torch.randn(T, C, device=device)
    ours = triton.testing.do_bench(lambda: embedding_forward(tokens, wte, wpe))
    torch_ms = triton.testing.do_bench(lambda: embedding_reference(tokens.long(), wte, wpe))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """Forward and backward at the model's shape, a 9-token document padded to 16, against the reference."""
    T, n, C, V = 16, 9, 16, 27
    tokens = torch.randint(0, V, (T,), device=device, dtype=torch.int32)
    wte = torch.randn(V, C, device=device, requires_grad=True)
    wpe = torch.randn(T, C, device=device, requires_grad=True)
    d_wte, d_wpe = torch.empty_like(wte), torch.empty_like(wpe)
    x = Embedding.apply(tokens, torch.tensor([n], device=device, dtype=torch.int32), wte, wpe, d_wte, d_wpe)
    g = torch.randn(T, C, device=device)
    x.backward(g)
    wte_ref, wpe_ref = wte.detach().clone().requires_grad_(), wpe.detach().clone().requires_grad_()
    x_ref = embedding_reference(tokens.long(), wte_ref, wpe_ref)
    x_ref[:n].backward(g[:n])  # rows past n are padding: no gradient
    backward = max((d_wte - wte_ref.grad).abs().max().item(), (d_wpe - wpe_ref.grad).abs().max().item())
    return {"forward": (x - x_ref).abs().max().item(), "backward": backward}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("embedding", check, bench))
