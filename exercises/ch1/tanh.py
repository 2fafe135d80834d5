"""Exercise 1.1 -- a new Value op: tanh, with its local derivative.

Chapter 1's Value ops each compute their result and, in the same line, the derivative of the
result with respect to each input: read `Value.exp` and `Value.relu` in 1_pure_python/main.py,
and 'How the engine works' in its README. Add tanh the same way: one primitive op, one node of
the graph, whose local derivative you work out on paper first.

Shapes: one Value in, one Value out.

    python exercises/ch1/tanh.py            # try yours on one number
    python exercises/check.py 1.1           # check it, on many inputs
    python exercises/check.py 1.1 --hint    # a hint when you want one (the idea, the shapes, a formula)
"""

import math  # noqa: F401  (you will need it)
import sys
from pathlib import Path

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show

Value = load("1_pure_python").Value


def tanh(x: Value) -> Value:
    """tanh(x) as one node of the graph."""
    raise NotImplementedError("write tanh: its value and its local derivative")


if __name__ == "__main__":
    x = Value(0.5)
    y = show(tanh, x)
    if isinstance(y, Value):
        y.backward()
        print(f"and its gradient, dtanh/dx at x = 0.5: {x.grad}")
