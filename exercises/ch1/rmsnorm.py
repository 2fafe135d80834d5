"""Exercise 1.4 -- rmsnorm out of Values.

rmsnorm(x) = x / sqrt(mean(x^2) + eps), eps = 1e-5 (chapter 1's RMSNORM_EPS). Build it from
Value operations (*, +, /, **), so backward gets its gradient for free.

    python exercises/check.py 1.4

Hints:
- mean(x^2) is a sum of x_i * x_i divided by len(x): a Value.
- `(something) ** -0.5` is 1 / sqrt(something).
"""

from chapters import load

stage1 = load("1_pure_python")
Value, RMSNORM_EPS = stage1.Value, stage1.RMSNORM_EPS


def rmsnorm(x: list[Value]) -> list[Value]:
    raise NotImplementedError("write rmsnorm from Value operations")
