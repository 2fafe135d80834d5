"""Exercise 5.4 -- predict the bytes a ring sends in one step (paper first, then the check).

Chapter 5 by hand (`--mode hand`, the default) on four processes, in float32 (the default):

    python 5_distributed/main.py --nproc-per-node 4 --batch-size 8

Each step, every rank adds its gradients into one flat buffer and calls one `dist.all_reduce` on
it ('The code: data parallelism by hand'; `ByHand` in 5_distributed/main.py says what the
buffer holds). Suppose that all-reduce is a ring, as you wrote it in 5.1 ('The ring
all-reduce'): how many bytes do the four ranks send in one step, all four added up? The check
runs one real step of chapter 5 on four ranks, records every all_reduce it makes and the size of
its buffer, and counts what a ring sends for each; it says whether you are right, too high or
too low, and names a known slip; it never tells you the number (`--reveal` does, once you have
tried).

    python exercises/check.py 5.4           # check your prediction
    python exercises/check.py 5.4 --hint    # a hint (three, one at a time)
    python exercises/check.py 5.4 --reveal  # the answer, counted and explained
"""

RING_BYTES_PER_STEP_AT_FOUR_RANKS = None  # your number

if __name__ == "__main__":
    print(f"your prediction: {RING_BYTES_PER_STEP_AT_FOUR_RANKS}; python exercises/check.py 5.4 checks it")
