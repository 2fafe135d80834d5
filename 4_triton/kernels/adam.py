"""Adam over every parameter in one launch.

Naive PyTorch: a Python loop over parameters, and per parameter about ten elementwise
kernels (each reading and writing its p, g, m or v); torch.optim's foreach/fused paths cut
the launches to a few per step. Here all 4,192 parameters, their gradients and both
moments are four flat buffers, so one kernel reads each once and writes p, m, v once.

The step's scalars (lr_t and the two bias corrections) are read from a small device
buffer rather than passed as arguments, so a captured CUDA graph can replay the same
launch at every step: the host writes the new scalars into the buffer before replay.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run on its own: python 4_triton/kernels/adam.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # 4_triton/, for kernels/
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402


def adam_reference(p, g, m, v, lr_t, bias1, bias2, beta1, beta2, eps):
    m.mul_(beta1).add_((1 - beta1) * g)
    v.mul_(beta2).add_((1 - beta2) * g * g)
    p.sub_(lr_t * (m / bias1) / ((v / bias2).sqrt() + eps))


# The update, elementwise (SPEC.md; no derivative needed, this is not differentiated):
#     m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
#     p -= lr_t * (m / bias1) / (sqrt(v / bias2) + eps),  bias_i = 1 - beta_i^(step + 1)
@triton.jit
def adam_update(p_ptr, g_ptr, m_ptr, v_ptr, offsets, mask, lr_t, bias1, bias2, beta1, beta2, eps):
    """One Adam step for the parameters at `offsets`: p, m and v updated in place from g.
    Shared by adam_kernel and the one-kernel training step (fused_step.py)."""
    g = tl.load(g_ptr + offsets, mask=mask)
    m = beta1 * tl.load(m_ptr + offsets, mask=mask) + (1 - beta1) * g
    v = beta2 * tl.load(v_ptr + offsets, mask=mask) + (1 - beta2) * (g * g)
    p = tl.load(p_ptr + offsets, mask=mask) - lr_t * (m / bias1) / (tl.sqrt(v / bias2) + eps)
    tl.store(m_ptr + offsets, m, mask=mask)
    tl.store(v_ptr + offsets, v, mask=mask)
    tl.store(p_ptr + offsets, p, mask=mask)


@triton.jit
def adam_kernel(
    p_ptr,  # (N,) flat parameters, updated in place
    g_ptr,  # (N,) flat gradients
    m_ptr,  # (N,) first moments, updated in place
    v_ptr,  # (N,) second moments, updated in place
    scalars_ptr,  # (3,) this step's lr_t, bias1, bias2
    N, beta1, beta2, eps,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    adam_update(p_ptr, g_ptr, m_ptr, v_ptr, offsets, offsets < N, tl.load(scalars_ptr), tl.load(scalars_ptr + 1),
                tl.load(scalars_ptr + 2), beta1, beta2, eps)


def adam_step(p, g, m, v, scalars, beta1, beta2, eps):
    plan = launch.flat(p.numel())
    adam_kernel[plan.grid](p, g, m, v, scalars, p.numel(), beta1, beta2, eps, **plan.meta)


def bench(N=4192, device="cuda"):
    p, g, m, v = (torch.randn(N, device=device) for _ in range(4))
    scalars = torch.tensor([1e-3, 0.5, 0.5], device=device)
    ours = triton.testing.do_bench(lambda: adam_step(p, g, m, v, scalars, 0.85, 0.99, 1e-8))
    params = [torch.nn.Parameter(torch.randn(n, device=device)) for n in (432, 256, 432, 768, 256, 1024, 1024)]
    for q in params:
        q.grad = torch.randn_like(q)
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.85, 0.99), eps=1e-8, foreach=True)
    torch_ms = triton.testing.do_bench(opt.step)
    return {"triton_us": ours * 1e3, "torch_foreach_us": torch_ms * 1e3}


def check(device):
    """Five steps over a model-sized flat buffer against torch.optim.Adam on the same numbers."""
    p = torch.nn.Parameter(torch.randn(4192, device=device))
    optimizer = torch.optim.Adam([p], lr=0.01, betas=(0.85, 0.99), eps=1e-8)
    flat, m, v = p.detach().clone(), torch.zeros(4192, device=device), torch.zeros(4192, device=device)
    for step in range(5):
        p.grad = torch.randn(4192, device=device)
        scalars = torch.tensor([0.01, 1 - 0.85 ** (step + 1), 1 - 0.99 ** (step + 1)], device=device)
        adam_step(flat, p.grad, m, v, scalars, 0.85, 0.99, 1e-8)
        optimizer.step()
    return {"parameters after 5 steps": (flat - p.detach()).abs().max().item()}


if __name__ == "__main__":
    from kernels import run_on_its_own

    sys.exit(run_on_its_own("adam", check, bench))
