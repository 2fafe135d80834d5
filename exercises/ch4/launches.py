"""Exercise 4.8 -- predict the launches of a training step (paper first, then the check).

Chapter 4's README counts the kernel launches of a one-layer step on one name ('Why launch
overhead is the whole story'), and says that a batch whose rows are shared among programs adds
launches that sum partial gradients in order ('Batches'). Predict the launches of one training
step of chapter 4's main.py with three layers and a batch of 17 names (`--n-layer 3
--batch-size 17`). Reason from the kernels chapter 4's README lists in 'The kernels', from the
model in 4_triton/main.py and from 'Batches': which kernels run once per layer and which once
per step, how many rows a batch's weight gradients sum over, and which of those sums are shared
among programs. The check counts the launches of a real step through the interpreter and says
whether you are right, too high or too low, and names a known slip; it never tells you the
number (`--reveal` does, once you have tried).

    python exercises/check.py 4.8           # check your prediction
    python exercises/check.py 4.8 --hint    # a hint (three, one at a time)
    python exercises/check.py 4.8 --reveal  # the answer, counted
"""

LAUNCHES_AT_THREE_LAYERS_17_NAMES = None  # your number

if __name__ == "__main__":
    print(f"your prediction: {LAUNCHES_AT_THREE_LAYERS_17_NAMES}; python exercises/check.py 4.8 checks it")
