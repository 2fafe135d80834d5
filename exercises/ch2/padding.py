"""Exercise 2.4 -- a batch of names as rectangular arrays, with a padding mask.

Names have different lengths; arrays do not. Turn a batch of tokenized names ([BOS] + letters
+ [BOS] each) into three arrays (inputs, targets, real): a name trains its first n positions
(SPEC.md, 'Model', says what n is, and chapter 2's README, 'Batches', why), the inputs are those
positions' tokens and the targets the token after each; shorter rows are padded with 0, and
`real` says which positions are real. Chapter 2 trains on exactly these arrays.

Shapes: three (B, T) arrays, T the longest n of this batch; inputs and targets integer, real
boolean. The dtypes are part of the answer: the check says why.

    python exercises/ch2/padding.py        # try yours on two names
    python exercises/check.py 2.4          # check it on many batches
    python exercises/check.py 2.4 --hint   # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import numpy as np  # noqa: F401  (you will need it)

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

from shared.tokenizer import positions  # noqa: F401  (you may want it: shared/tokenizer.py)


def batch_arrays(batch: list[list[int]], block_size: int):
    """(inputs, targets, real), each (B, T)."""
    raise NotImplementedError("write the padded batch and its mask")


if __name__ == "__main__":
    show(batch_arrays, [[26, 4, 12, 12, 0, 26], [26, 23, 26]], 16)  # "emma" and "x", BOS = 26
