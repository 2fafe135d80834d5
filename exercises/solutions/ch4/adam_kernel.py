"""Exercise 4.2, a worked solution."""

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
    tl.store(m_ptr + offsets, m, mask=mask)
    tl.store(v_ptr + offsets, v, mask=mask)
    p = tl.load(p_ptr + offsets, mask=mask)
    tl.store(p_ptr + offsets, p - lr_t * (m / bias1) / (tl.sqrt(v / bias2) + eps), mask=mask)


def adam_step(p, g, m, v, step: int, num_steps: int, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    lr_t = lr * (1 - step / num_steps)
    adam_kernel[(triton.cdiv(p.numel(), BLOCK),)](p, g, m, v, p.numel(), lr_t, 1 - beta1 ** (step + 1),
                                                  1 - beta2 ** (step + 1), beta1, beta2, eps, BLOCK=BLOCK)
