"""Exercise 1.1, a worked solution: one node, its local derivative computed from the output."""

import math
import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show

Value = load("1_pure_python").Value


def tanh(x: Value) -> Value:
    """tanh(x) as one node of the graph."""
    t = math.tanh(x.data)
    return Value(t, (x,), (1 - t * t,))  # d tanh(x)/dx = 1 - tanh(x)^2, from the output t


if __name__ == "__main__":
    x = Value(0.5)
    y = show(tanh, x)
    if isinstance(y, Value):
        y.backward()
        print(f"and its gradient, dtanh/dx at x = 0.5: {x.grad}")
