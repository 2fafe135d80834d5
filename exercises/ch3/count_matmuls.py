"""Exercise 3.3 -- predict the matrix multiplies of a training step (paper first, then the check).

Chapter 3's profile ('One step, op by op') counts the aten::mm calls of one training step of
the one-layer model. Predict how many a step of the same model with two layers runs
(`--n-layer 2`): forward, backward and the optimizer, one name. Reason from chapter 3's `GPT`
in 3_pytorch/main.py and from what a linear layer's backward needs (chapter 2's README,
'Backpropagation through arrays'). The check counts the matmuls of a real two-layer step and
says whether you are right, too high or too low, and names a known slip; it never tells you the
number (`--reveal` does, once you have tried).

    python exercises/check.py 3.3           # check your prediction
    python exercises/check.py 3.3 --hint    # a hint (three, one at a time)
    python exercises/check.py 3.3 --reveal  # the answer, counted and explained
"""

MATMULS_AT_TWO_LAYERS = None  # your number

if __name__ == "__main__":
    print(f"your prediction: {MATMULS_AT_TWO_LAYERS}; python exercises/check.py 3.3 checks it")
