"""Exercise 1.4, a worked solution (chapter 1's own, line for line)."""

import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show

stage1 = load("1_pure_python")
Value, RMSNORM_EPS = stage1.Value, stage1.RMSNORM_EPS


def rmsnorm(x: list[Value]) -> list[Value]:
    mean_square = sum(xi * xi for xi in x) / len(x)
    scale = (mean_square + RMSNORM_EPS) ** -0.5
    return [xi * scale for xi in x]


if __name__ == "__main__":
    show(rmsnorm, [Value(1.0), Value(-2.0), Value(3.0)])
