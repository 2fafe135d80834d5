"""Exercise 1.4, a worked solution (chapter 1's own, line for line)."""

from chapters import load

stage1 = load("1_pure_python")
Value, RMSNORM_EPS = stage1.Value, stage1.RMSNORM_EPS


def rmsnorm(x: list[Value]) -> list[Value]:
    mean_square = sum(xi * xi for xi in x) / len(x)
    scale = (mean_square + RMSNORM_EPS) ** -0.5
    return [xi * scale for xi in x]
