"""Exercise 3.3 -- predict the arithmetic of a step's matrix multiplies (paper first, then the check).

Chapter 3's profile ('One step, op by op') counts a step's op calls and its floating-point
operations (FLOPs; a multiply-add counts 2). Predict the FLOPs of the matrix multiplies
(`aten::mm`) in one training step of chapter 3's model with two layers (`--n-layer 2`) on the
one name "emma": forward, backward and the optimizer. Reason from chapter 3's `GPT` in
3_pytorch/main.py (its weights' shapes: SPEC.md), from what a linear layer's backward computes
(chapter 2's README, 'Backpropagation through arrays') and from how many positions a name
trains (chapter 1's README, 'The task: predict the next letter'). The check counts the FLOPs of every aten::mm of a real
two-layer step on "emma" and says whether you are right, too high or too low, and names a known
slip; it never tells you the number (`--reveal` does, once you have tried).

    python exercises/check.py 3.3           # check your prediction
    python exercises/check.py 3.3 --hint    # a hint (three, one at a time)
    python exercises/check.py 3.3 --reveal  # the answer, counted and explained
"""

MATMUL_FLOPS_AT_TWO_LAYERS = None  # your number

if __name__ == "__main__":
    print(f"your prediction: {MATMUL_FLOPS_AT_TWO_LAYERS}; python exercises/check.py 3.3 checks it")
