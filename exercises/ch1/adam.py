"""Exercise 1.3 -- one Adam step, with its bias correction.

Write the update chapter 1's `adam_step` makes to one parameter, without looking at it: from
the parameter p, its gradient g, its two running averages m (of the gradient) and v (of the
squared gradient) and the 0-based step, return the new (p, m, v). Chapter 1's README, 'Adam:
what the gradients are used for', says what each piece does. Use the chapter's constants below
and its learning rate, which falls linearly to zero over `num_steps` (SPEC.md, 'Training').

Shapes: plain floats in, the tuple (p, m, v) out.

    python exercises/ch1/adam.py            # try yours on one step
    python exercises/check.py 1.3           # check it, step by step, on many gradient sequences
    python exercises/check.py 1.3 --hint    # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show

stage1 = load("1_pure_python")
LEARNING_RATE, BETA1, BETA2, EPS_ADAM = stage1.LEARNING_RATE, stage1.BETA1, stage1.BETA2, stage1.EPS_ADAM


def adam_update(p: float, g: float, m: float, v: float, step: int, num_steps: int) -> tuple[float, float, float]:
    """(new p, new m, new v) after one Adam step; `step` is 0-based."""
    raise NotImplementedError("write Adam's update for one parameter")


if __name__ == "__main__":
    show(adam_update, 0.5, 0.3, 0.0, 0.0, 0, 10)  # p = 0.5, g = 0.3, fresh moments, the first of 10 steps
