"""Exercise 1.3 -- one Adam step, with its bias correction.

Write the update chapter 1's `adam_step` makes to one parameter: from the parameter p, its
gradient g, its two moments m and v and the 0-based step, return the new (p, m, v). Use the
chapter's constants (LEARNING_RATE, BETA1, BETA2, EPS_ADAM) and its linear learning-rate decay
over `num_steps`.

    python exercises/check.py 1.3

Hints:
- m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2.
- m and v start at 0, so early on they are too small: divide by 1 - beta^(step + 1).
- lr_t = LEARNING_RATE (1 - step / num_steps).
"""

from chapters import load

stage1 = load("1_pure_python")
LEARNING_RATE, BETA1, BETA2, EPS_ADAM = stage1.LEARNING_RATE, stage1.BETA1, stage1.BETA2, stage1.EPS_ADAM


def adam_update(p: float, g: float, m: float, v: float, step: int, num_steps: int) -> tuple[float, float, float]:
    """(new p, new m, new v) after one Adam step; `step` is 0-based."""
    raise NotImplementedError("write Adam's update for one parameter")
