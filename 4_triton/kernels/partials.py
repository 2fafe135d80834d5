"""Sums over a batch split among programs: partial sums, then one ordered reduction.

A weight's gradient is a sum over every row of the batch (B * T of them). One program per
gradient tile walking all the rows is fine at B = 1 (16 rows), but at B = 4096 a single
program walks 65,536 rows while the rest of the GPU waits. So the launchers split the rows
into chunks (kernels/launch.py's `split_rows` decides how): program p sums chunk p into its
own slice of a partials buffer, and `sum_partials_kernel` adds the slices in order 0, 1, 2,
... -- no atomics, so the sum is the same bits on every run. Triton's layer-norm tutorial
also sums a weight gradient in parts, but has groups of programs add into shared buffers
under a lock, in whatever order they arrive; here each program has its slice, and the order
is fixed. `ordered_sum` is that one sum, also used by the one-kernel step's reduction
(fused_step.py). While the batch fits in one chunk there is one program per tile and no
second kernel.

Naive PyTorch: `partials.sum(0)`, which is one kernel too; ours writes straight into the
flat gradient buffer (two outputs, so the embedding's two tables need one launch).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/partials.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402


def partials_reference(partials):
    return partials.sum(0)


@triton.jit
def ordered_sum(partials_ptr, offsets, mask, S, N):
    """Elements `offsets` of the sum of S rows of N (rows at partials_ptr + p * N), added in the
    order 0, 1, 2, ...: the same bits on every run."""
    total = tl.load(partials_ptr + offsets, mask=mask, other=0.0)
    for p in range(1, S):
        total += tl.load(partials_ptr + p * N + offsets, mask=mask, other=0.0)
    return total


@triton.jit
def sum_partials_kernel(
    partials_ptr,  # (S, N) the S programs' partial sums, one row each
    out_a_ptr,  # (N_A,) output: elements 0 .. N_A - 1 of the sum
    out_b_ptr,  # (N - N_A,) output: the rest (the embedding's second table; unused if N_A == N)
    S, N, N_A,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < N
    total = ordered_sum(partials_ptr, offsets, mask, S, N)
    tl.store(out_a_ptr + offsets, total, mask=offsets < N_A)
    tl.store(out_b_ptr + offsets - N_A, total, mask=mask & (offsets >= N_A))


def sum_partials(partials, out_a, out_b=None):
    """out_a (then out_b) = partials.sum(0), added in a fixed order. partials (S, N) contiguous."""
    S, N = partials.shape[0], partials[0].numel()
    plan = launch.flat(N)
    sum_partials_kernel[plan.grid](partials, out_a, out_a if out_b is None else out_b, S, N, out_a.numel(),
                                   **plan.meta)


def bench(S=64, N=1024, device="cuda"):
    partials, out = torch.randn(S, N, device=device), torch.empty(N, device=device)
    ours = triton.testing.do_bench(lambda: sum_partials(partials, out))
    theirs = triton.testing.do_bench(lambda: partials_reference(partials))
    return {"triton_us": ours * 1e3, "torch_us": theirs * 1e3}


def check(device):
    """Sums of 1, 3 and 70 partials, split across two outputs at an odd point."""
    errors = {}
    for S in (1, 3, 70):
        partials = torch.randn(S, 1500, device=device)
        a, b = torch.empty(1000, device=device), torch.empty(500, device=device)
        sum_partials(partials, a, b)
        errors[f"S={S}"] = (torch.cat([a, b]) - partials_reference(partials)).abs().max().item()
    return errors


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("partials", check, bench, tolerance=1e-4))
