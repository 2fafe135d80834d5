"""Exercise 1.4 -- rmsnorm out of Values.

rmsnorm divides a vector by the root of the mean of its squares (with RMSNORM_EPS added under
the root, so a vector of zeros stays finite): the rmsnorm box of chapter 1's README, 'The
model: microgpt's forward pass'. Build it from Value operations only (*, +, /, **), so that
backward gets its gradient for free.

Shapes: a list of C Values in, a list of C Values out.

    python exercises/ch1/rmsnorm.py         # try yours on three numbers
    python exercises/check.py 1.4           # check it: values and gradients, many vector lengths
    python exercises/check.py 1.4 --hint    # a hint (three, one at a time)
"""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show

stage1 = load("1_pure_python")
Value, RMSNORM_EPS = stage1.Value, stage1.RMSNORM_EPS


def rmsnorm(x: list[Value]) -> list[Value]:
    raise NotImplementedError("write rmsnorm from Value operations")


if __name__ == "__main__":
    show(rmsnorm, [Value(1.0), Value(-2.0), Value(3.0)])
