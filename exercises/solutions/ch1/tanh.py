"""Exercise 1.1, a worked solution: one node, its local derivative computed from the output."""

import math

from chapters import load

Value = load("1_pure_python").Value


def tanh(x: Value) -> Value:
    t = math.tanh(x.data)
    return Value(t, (x,), (1 - t * t,))  # d tanh(x)/dx = 1 - tanh(x)^2, from the output t
