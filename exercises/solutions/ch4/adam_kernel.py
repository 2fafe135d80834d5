"""Exercise 4.6, a worked solution -- Adam as one Triton kernel over a flat buffer.

Chapter 4 keeps all 4,192 parameters in one flat buffer, so that one launch updates them all
(its README, 'The kernels', and `kernels/adam.py`). Write `adam_kernel`: each program updates
BLOCK consecutive parameters in place -- p, and its running averages m and v -- from the
gradient g, exactly as chapter 1's Adam (your exercise 1.3) does for one. The launcher computes
this step's learning rate lr_t and the two bias corrections, bias1 = 1 - beta1^(step + 1) and
bias2 = 1 - beta2^(step + 1). torch.optim.Adam is off limits during the check.

Shapes: p, g, m, v flat float32 buffers of N numbers, any N; BLOCK = 1024.

    python exercises/ch4/adam_kernel.py      # try yours: one step on five parameters
    python exercises/check.py 4.6            # check it: several steps, several sizes
    python exercises/check.py 4.6 --hint     # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show  # first: Triton in its interpreter, every load and store checked

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def adam_kernel(p_ptr, g_ptr, m_ptr, v_ptr, N, lr_t, bias1, bias2, beta1, beta2, eps, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < N
    g = tl.load(g_ptr + offsets, mask=mask)
    m = beta1 * tl.load(m_ptr + offsets, mask=mask) + (1 - beta1) * g
    v = beta2 * tl.load(v_ptr + offsets, mask=mask) + (1 - beta2) * g * g
    tl.store(m_ptr + offsets, m, mask=mask)  # the moments carry over to the next step
    tl.store(v_ptr + offsets, v, mask=mask)
    p = tl.load(p_ptr + offsets, mask=mask)
    tl.store(p_ptr + offsets, p - lr_t * (m / bias1) / (tl.sqrt(v / bias2) + eps), mask=mask)


def adam_step(p, g, m, v, step: int, num_steps: int, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    """Update the flat float32 buffers p, m, v in place from g; `step` is 0-based."""
    lr_t = lr * (1 - step / num_steps)
    adam_kernel[(triton.cdiv(p.numel(), BLOCK),)](p, g, m, v, p.numel(), lr_t, 1 - beta1 ** (step + 1),
                                                  1 - beta2 ** (step + 1), beta1, beta2, eps, BLOCK=BLOCK)
    return p


if __name__ == "__main__":
    show(adam_step, torch.full((5,), 0.5), torch.tensor([0.3, -1.2, 0.0, 2.0, -0.7]), torch.zeros(5), torch.zeros(5),
         0, 10)
