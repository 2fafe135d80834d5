"""Mean next-token cross-entropy over the n real rows, with its gradient made in forward.

Naive PyTorch: `F.cross_entropy(logits, targets)` is a log-softmax kernel that writes a
(T, V) array, a gather and a mean; backward reads the log-probabilities again to form
softmax - onehot. But everything the gradient needs -- the row max and sum of exp -- is
already in registers while the loss is computed, so this kernel writes the gradient
(softmax - onehot) / n there and then, as Liger-Kernel does, and backward only scales it
by the incoming gradient (1.0 for a loss). Liger even overwrites the logits with it to
save memory; here it goes to its own buffer so logits stay readable.

The vocabulary (27) is padded to a power of two (32); padded columns load as -inf, so
they get probability zero and no gradient. Rows at or past n (padding of the document)
contribute neither loss nor gradient.
"""

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

if __name__ == "__main__" and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # run on its own without a GPU: through Triton's interpreter
import triton  # noqa: E402
import triton.language as tl  # noqa: E402


def cross_entropy_reference(logits, targets):
    return F.cross_entropy(logits, targets)


# Per real row t with z = logits[t], p = softmax(z), target y:
#     loss_t = logsumexp(z) - z_y,    d loss_t / d z = p - onehot(y)
# and loss = (1/n) sum_t loss_t, so dL/dz_t = (p - onehot(y)) / n.
@triton.jit
def cross_entropy_fwd_kernel(
    logits_ptr,  # (T, V) logits
    targets_ptr,  # (T,) int32 next-token ids
    n_ptr,  # (1,) int32: rows < n are real
    loss_ptr,  # (1,) output: the mean loss
    d_logits_ptr,  # (T, V) output: dL/dlogits
    T, V,
    BLOCK_T: tl.constexpr, BLOCK_V: tl.constexpr,
):
    rows = tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_V)
    n = tl.load(n_ptr)
    live = (rows < T) & (rows < n)
    in_bounds = (rows[:, None] < T) & (cols[None, :] < V)
    z = tl.load(logits_ptr + rows[:, None] * V + cols[None, :], mask=in_bounds, other=float("-inf"))
    z = tl.where(live[:, None], z, 0.0)  # keep padded rows finite; they are masked out below
    targets = tl.load(targets_ptr + rows, mask=live, other=0)
    z_max = tl.max(z, axis=1)
    e = tl.exp(z - z_max[:, None])
    sum_e = tl.sum(e, axis=1)
    is_target = cols[None, :] == targets[:, None]
    z_target = tl.sum(tl.where(is_target, z, 0.0), axis=1)
    loss_rows = tl.where(live, tl.log(sum_e) + z_max - z_target, 0.0)
    n_real = n.to(z.dtype)
    tl.store(loss_ptr, tl.sum(loss_rows, axis=0) / n_real)
    d = (e / sum_e[:, None] - tl.where(is_target, 1.0, 0.0)) / n_real
    d = tl.where(live[:, None] & (cols[None, :] < V), d, 0.0)
    tl.store(d_logits_ptr + rows[:, None] * V + cols[None, :], d, mask=in_bounds)


# Backward: dL/dlogits = (stored gradient) * (gradient of whatever consumed the loss).
@triton.jit
def cross_entropy_bwd_kernel(
    d_logits_ptr,  # (T, V) gradient stored by the forward, scaled in place
    g_ptr,  # (1,) gradient with respect to the loss
    numel,
    BLOCK: tl.constexpr,
):
    offsets = tl.arange(0, BLOCK)
    mask = offsets < numel
    d = tl.load(d_logits_ptr + offsets, mask=mask)
    tl.store(d_logits_ptr + offsets, d * tl.load(g_ptr), mask=mask)


def cross_entropy_forward(logits, targets, n):
    T, V = logits.shape
    loss = torch.empty(1, device=logits.device, dtype=logits.dtype)
    d_logits = torch.empty_like(logits)
    cross_entropy_fwd_kernel[(1,)](logits, targets, n, loss, d_logits, T, V,
                                   BLOCK_T=triton.next_power_of_2(T), BLOCK_V=triton.next_power_of_2(V))
    return loss, d_logits


def cross_entropy_backward(d_logits, g):
    """Scales the gradient the forward stored by g, the loss's own gradient, in place."""
    cross_entropy_bwd_kernel[(1,)](d_logits, g, d_logits.numel(), BLOCK=triton.next_power_of_2(d_logits.numel()))
    return d_logits


class CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over the n real rows; backward only scales what forward stored."""

    @staticmethod
    def forward(ctx, logits, targets, n):
        loss, d_logits = cross_entropy_forward(logits, targets, n)
        ctx.save_for_backward(d_logits)
        return loss[0]

    @staticmethod
    def backward(ctx, g):
        (d_logits,) = ctx.saved_tensors
        return cross_entropy_backward(d_logits, g.reshape(1).contiguous()), None, None


def bench(T=16, V=27, device="cuda"):
    logits = torch.randn(T, V, device=device)
    targets = torch.randint(0, V, (T,), device=device)
    targets32, n = targets.int(), torch.tensor([T], device=device, dtype=torch.int32)
    ours = triton.testing.do_bench(lambda: cross_entropy_forward(logits, targets32, n))
    torch_ms = triton.testing.do_bench(lambda: cross_entropy_reference(logits, targets))
    return {"triton_us": ours * 1e3, "torch_us": torch_ms * 1e3}


def check(device):
    """Loss and gradient over the 9 real rows of 16, vocabulary 27, against F.cross_entropy."""
    T, n, V = 16, 9, 27
    logits = torch.randn(T, V, device=device, requires_grad=True)
    targets = torch.randint(0, V, (T,), device=device, dtype=torch.int32)
    loss = CrossEntropy.apply(logits, targets, torch.tensor([n], device=device, dtype=torch.int32))
    (2.5 * loss).backward()
    ref = logits.detach().clone().requires_grad_()
    loss_ref = cross_entropy_reference(ref[:n], targets[:n].long())
    (2.5 * loss_ref).backward()
    return {"forward": (loss - loss_ref).abs().item(), "backward": (logits.grad - ref.grad).abs().max().item()}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("cross_entropy", check, bench))
