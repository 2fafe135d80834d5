"""Exercise 4.2 -- Adam as one Triton kernel over a flat buffer.

Chapter 4 keeps all 4,192 parameters in one flat buffer so that one launch updates them all.
Write `adam_kernel`: each program updates BLOCK consecutive parameters in place -- p, and its
moments m and v -- from the gradient g, given this step's lr_t and the two bias corrections
bias1 = 1 - beta1^(t+1), bias2 = 1 - beta2^(t+1) (computed by the launcher).

    python exercises/check.py 4.2

Hints:
- offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK); mask = offsets < N.
- m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2; store both.
- p -= lr_t (m / bias1) / (sqrt(v / bias2) + eps); store p.
"""

import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def adam_kernel(p_ptr, g_ptr, m_ptr, v_ptr, N, lr_t, bias1, bias2, beta1, beta2, eps, BLOCK: tl.constexpr):
    # your kernel here (and delete the line below)
    tl.static_assert(False, "write adam_kernel")


def adam_step(p, g, m, v, step: int, num_steps: int, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    """Update the flat float32 buffers p, m, v in place from g; `step` is 0-based."""
    lr_t = lr * (1 - step / num_steps)
    adam_kernel[(triton.cdiv(p.numel(), BLOCK),)](p, g, m, v, p.numel(), lr_t, 1 - beta1 ** (step + 1),
                                                  1 - beta2 ** (step + 1), beta1, beta2, eps, BLOCK=BLOCK)
