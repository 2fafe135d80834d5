"""Exercise 1.2 -- backpropagation by hand.

With a = 3, b = -2 and c = 5, take

    u = a * b
    v = u + c
    L = v * a

Work out dL/da, dL/db and dL/dc on paper, the way chapter 1's README does for its five-node
graph (from L backwards, multiplying local derivatives, adding where a value reaches L by more
than one path), and write the three numbers below. Then:

    python exercises/check.py 1.2

Hint: `a` reaches L twice, through u and directly.
"""

GRADIENTS = {"a": None, "b": None, "c": None}  # your numbers: dL/da, dL/db, dL/dc
