"""Exercise 1.3, a worked solution."""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show

stage1 = load("1_pure_python")
LEARNING_RATE, BETA1, BETA2, EPS_ADAM = stage1.LEARNING_RATE, stage1.BETA1, stage1.BETA2, stage1.EPS_ADAM


def adam_update(p: float, g: float, m: float, v: float, step: int, num_steps: int) -> tuple[float, float, float]:
    """(new p, new m, new v) after one Adam step; `step` is 0-based."""
    lr_t = LEARNING_RATE * (1 - step / num_steps)
    m = BETA1 * m + (1 - BETA1) * g
    v = BETA2 * v + (1 - BETA2) * g * g
    m_hat = m / (1 - BETA1 ** (step + 1))  # bias correction: m and v started at 0
    v_hat = v / (1 - BETA2 ** (step + 1))
    return p - lr_t * m_hat / (v_hat**0.5 + EPS_ADAM), m, v


if __name__ == "__main__":
    show(adam_update, 0.5, 0.3, 0.0, 0.0, 0, 10)  # p = 0.5, g = 0.3, fresh moments, the first of 10 steps
