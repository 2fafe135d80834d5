"""Mean next-token cross-entropy over every real row of a batch, its gradient made in forward.

Naive PyTorch: `F.cross_entropy(logits, targets)` is a log-softmax kernel that writes a
(B * T, V) array, a gather and a mean; backward reads the log-probabilities again to form
softmax - onehot. But everything the gradient needs -- the row max and sum of exp -- is
already in registers while the loss is computed, so this kernel writes the gradient there
and then, as Liger-Kernel does, and backward only scales it by the incoming gradient (1.0
for a loss). Liger even overwrites the logits with it to save memory; here it goes to its
own buffer so logits stay readable.

The loss is the mean over all real rows of all B documents (SPEC.md), so one kernel per
document is not enough: a second, one-program kernel adds the documents' sums in a fixed
order (never with atomics, whose order, and so whose float result, changes from run to run)
and divides by the number of real rows. Backward divides by that count as it scales.

The vocabulary (27) is padded to a power of two (32); padded columns load as -inf, so
they get probability zero and no gradient. Rows at or past a document's n (its padding)
contribute neither loss nor gradient.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/cross_entropy.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402
from kernels.launch import ensure_contiguous  # noqa: E402


def cross_entropy_reference(logits, targets):
    return F.cross_entropy(logits, targets)


# Per real row t with z = logits[t], p = softmax(z), target y:
#     loss_t = logsumexp(z) - z_y,    d loss_t / d z = p - onehot(y)
# and loss = (1/count) sum over real rows of loss_t, count = the number of real rows in the
# batch, so dL/dz_t = (p - onehot(y)) / count. One program per document b: it writes its
# rows' sum of loss_t and their p - onehot(y); the division by count waits for the count.
@triton.jit
def cross_entropy_fwd_kernel(
    logits_ptr,  # (B, T, V) logits
    targets_ptr,  # (B, T) int32 next-token ids
    n_ptr,  # (B,) int32: document b's rows t < n_b are real
    loss_sums_ptr,  # (B,) output: each document's sum of loss_t over its real rows
    d_logits_ptr,  # (B, T, V) output: p - onehot(target) on real rows, 0 on padding
    T, V,
    BLOCK_T: tl.constexpr, BLOCK_V: tl.constexpr,
):
    b = tl.program_id(0)
    rows = tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_V)
    n = tl.load(n_ptr + b)
    live = (rows < T) & (rows < n)
    in_bounds = (rows[:, None] < T) & (cols[None, :] < V)
    offsets = (b * T + rows[:, None]) * V + cols[None, :]
    z = tl.load(logits_ptr + offsets, mask=in_bounds, other=float("-inf"))
    z = tl.where(live[:, None], z, 0.0)  # keep padded rows finite; they are masked out below
    targets = tl.load(targets_ptr + b * T + rows, mask=live, other=0)
    z_max = tl.max(z, axis=1)
    e = tl.exp(z - z_max[:, None])
    sum_e = tl.sum(e, axis=1)
    is_target = cols[None, :] == targets[:, None]
    z_target = tl.sum(tl.where(is_target, z, 0.0), axis=1)
    tl.store(loss_sums_ptr + b, tl.sum(tl.where(live, tl.log(sum_e) + z_max - z_target, 0.0), axis=0))
    d = e / sum_e[:, None] - tl.where(is_target, 1.0, 0.0)
    d = tl.where(live[:, None] & (cols[None, :] < V), d, 0.0)
    tl.store(d_logits_ptr + offsets, d, mask=in_bounds)


@triton.jit
def cross_entropy_mean_kernel(
    loss_sums_ptr,  # (B,) each document's loss sum, from the forward kernel
    n_ptr,  # (B,) int32: each document's number of real rows
    loss_ptr,  # (1,) output: the mean loss over the batch's real rows
    count_ptr,  # (1,) output: the number of real rows, as a float, for backward
    B,
    BLOCK_B: tl.constexpr,
):
    total = tl.zeros((BLOCK_B,), dtype=loss_ptr.dtype.element_ty)
    count = tl.zeros((BLOCK_B,), dtype=tl.int32)
    for b0 in range(0, B, BLOCK_B):  # in a fixed order: the same sum on every run
        docs = b0 + tl.arange(0, BLOCK_B)
        total += tl.load(loss_sums_ptr + docs, mask=docs < B, other=0.0)
        count += tl.load(n_ptr + docs, mask=docs < B, other=0)
    count_real = tl.sum(count, axis=0).to(total.dtype)
    tl.store(loss_ptr, tl.sum(total, axis=0) / count_real)
    tl.store(count_ptr, count_real)


# Backward: dL/dlogits = (p - onehot) * (gradient of whatever consumed the loss) / count.
@triton.jit
def cross_entropy_bwd_kernel(
    d_logits_ptr,  # (B, T, V) p - onehot stored by the forward
    g_ptr,  # (1,) gradient with respect to the loss
    count_ptr,  # (1,) number of real rows
    out_ptr,  # (B, T, V) output: dL/dlogits (a new buffer: backward may run twice on one forward)
    numel,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    d = tl.load(d_logits_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, d * tl.load(g_ptr) / tl.load(count_ptr), mask=mask)


def cross_entropy_forward(logits, targets, n):
    """logits (..., T, V), targets (..., T), n (B,) int32 real rows per document.
    Returns the mean loss (1,), the unscaled gradient, and the count of real rows (1,)."""
    T, V = logits.shape[-2], logits.shape[-1]
    B = logits.numel() // (T * V)
    loss, count = (torch.empty(1, device=logits.device, dtype=logits.dtype) for _ in range(2))
    loss_sums = torch.empty(B, device=logits.device, dtype=logits.dtype)
    d_logits = torch.empty_like(logits)
    plan = launch.per_document(B, T, V)
    cross_entropy_fwd_kernel[plan.grid](logits, targets, n, loss_sums, d_logits, T, V, **plan.meta)
    plan = launch.flat(B, "BLOCK_B", programs=1)  # one program adds the documents' sums in order
    cross_entropy_mean_kernel[plan.grid](loss_sums, n, loss, count, B, **plan.meta)
    return loss, d_logits, count


def cross_entropy_backward(d_logits, g, count):
    """The gradient the forward stored, scaled by g / count."""
    numel = d_logits.numel()
    out = torch.empty_like(d_logits)
    plan = launch.flat(numel)
    cross_entropy_bwd_kernel[plan.grid](d_logits, g, count, out, numel, **plan.meta)
    return out


class CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over the real rows of a batch; backward only scales what forward stored."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, logits, targets, n):
        loss, d_logits, count = cross_entropy_forward(logits, targets, n)
        ctx.save_for_backward(d_logits, count)
        return loss[0]

    @staticmethod
    @ensure_contiguous
    def backward(ctx, g):
        d_logits, count = ctx.saved_tensors
        return cross_entropy_backward(d_logits, g.reshape(1), count), None, None


def bench(T=16, V=27, device="cuda"):
    logits = torch.randn(T, V, device=device)
    targets = torch.randint(0, V, (T,), device=device)
    targets32, n = targets.int(), torch.tensor([T], device=device, dtype=torch.int32)
    ours = triton.testing.do_bench(lambda: cross_entropy_forward(logits, targets32, n))
    torch_ms = triton.testing.do_bench(lambda: cross_entropy_reference(logits, targets))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """Loss and gradient over a batch of three documents of 9, 16 and 1 real rows of 16,
    vocabulary 27, against F.cross_entropy on the real rows alone."""
    B, T, V, lengths = 3, 16, 27, [9, 16, 1]
    logits = torch.randn(B, T, V, device=device, requires_grad=True)
    targets = torch.randint(0, V, (B, T), device=device, dtype=torch.int32)
    loss = CrossEntropy.apply(logits, targets, torch.tensor(lengths, device=device, dtype=torch.int32))
    (2.5 * loss).backward()
    ref = logits.detach().clone().requires_grad_()
    real = torch.arange(T, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
    loss_ref = cross_entropy_reference(ref[real], targets[real].long())
    (2.5 * loss_ref).backward()
    return {"forward": (loss - loss_ref).abs().item(), "backward": (logits.grad - ref.grad).abs().max().item()}


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("cross_entropy", check, bench))
