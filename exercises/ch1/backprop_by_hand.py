"""Exercise 1.2 -- backpropagation by hand (a prediction: paper first, then the check).

With a = 3, b = -2 and c = 5, take

    u = a * b
    v = u + c
    L = v * a

Work out dL/da, dL/db and dL/dc on paper, the way chapter 1's README does in 'Backpropagation,
by hand', and write the three numbers below. The check says whether each is right, or too high
or too low, and names a known slip; it never tells you the number (`--reveal` does, once you
have tried).

    python exercises/check.py 1.2           # check your numbers
    python exercises/check.py 1.2 --hint    # a hint (three, one at a time)
    python exercises/check.py 1.2 --reveal  # the answer, worked
"""

GRADIENTS = {"a": None, "b": None, "c": None}  # your numbers: dL/da, dL/db, dL/dc

if __name__ == "__main__":
    print(f"your gradients: {GRADIENTS}; python exercises/check.py 1.2 checks them")
