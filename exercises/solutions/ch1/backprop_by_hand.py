"""Exercise 1.2, a worked solution.

u = a*b = -6, v = u + c = -1, L = v*a = -3. Backwards: dL/dv = a = 3; dL/du = dL/dv * 1 = 3;
dL/dc = dL/dv * 1 = 3; dL/db = dL/du * a = 9; dL/da = dL/du * b (through u) + v (directly:
L = v * a) = 3 * (-2) + (-1) = -7.
"""

GRADIENTS = {"a": -7.0, "b": 9.0, "c": 3.0}  # your numbers: dL/da, dL/db, dL/dc

if __name__ == "__main__":
    print(f"your gradients: {GRADIENTS}; python exercises/check.py 1.2 checks them")
