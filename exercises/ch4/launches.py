"""Exercise 4.8 -- predict the launches of a training step (paper first, then the check).

At SPEC.md's one layer a training step of chapter 4 is 29 kernel launches. How many at three
layers (`--n-layer 3`, one name per step)? Reason from the kernels chapter 4's README lists in
'The kernels' and from the model in 4_triton/main.py: which of them run once per layer, which
once per step. The check counts the launches of a real three-layer step through the
interpreter and says whether you are right, too high or too low, or off by a layer; it never
tells you the number (`--reveal` does, once you have tried).

    python exercises/check.py 4.8           # check your prediction
    python exercises/check.py 4.8 --hint    # a hint (three, one at a time)
    python exercises/check.py 4.8 --reveal  # the answer, counted
"""

LAUNCHES_AT_THREE_LAYERS = None  # your number

if __name__ == "__main__":
    print(f"your prediction: {LAUNCHES_AT_THREE_LAYERS}; python exercises/check.py 4.8 checks it")
