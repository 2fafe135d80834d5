"""Exercise 1.1 -- a new Value op: tanh, with its local derivative.

Chapter 1's `Value` ops compute their result and, in the same line, the derivative of the
result with respect to each input (`__mul__` stores `(other.data, self.data)`). Write tanh as
one such primitive op: one node, whose local derivative you work out on paper.

    python exercises/check.py 1.1

Hints:
- `Value(data, children, local_grads)`: children is a tuple of input Values, local_grads the
  matching tuple of d(result)/d(input).
- d tanh(x) / dx = 1 - tanh(x)^2. Which number do you square: the input, or the output?
"""

import math  # noqa: F401  (you will need it)

from chapters import load

Value = load("1_pure_python").Value


def tanh(x: Value) -> Value:
    """tanh(x) as one node of the graph."""
    raise NotImplementedError("write tanh: its value and its local derivative")
