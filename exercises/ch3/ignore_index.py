"""Exercise 3.4 -- a padded batch for F.cross_entropy, the padding left out by ignore_index.

Chapter 3 pads a batch like chapter 2 (your exercise 2.4) but has no mask: F.cross_entropy
leaves out of its mean every target equal to its `ignore_index`, -100 (PADDING below). Make
(inputs, targets) for chapter 3's model: each name's first n positions, the shorter rows
padded. The check compares your tensors with the chapter's, then runs chapter 3's model on your
batch and compares its loss with chapter 2's on the same names.

Shapes: two (B, T) tensors, T the longest n of this batch. The dtypes are part of the answer:
the check says why.

    python exercises/ch3/ignore_index.py   # try yours on two names
    python exercises/check.py 3.4          # check it on many batches
    python exercises/check.py 3.4 --hint   # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import torch  # noqa: F401  (you will need it)

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

from shared.tokenizer import positions  # noqa: F401  (you may want it: shared/tokenizer.py)

PADDING = -100


def batch_tensors(batch: list[list[int]], block_size: int):
    """(inputs, targets), each (B, T)."""
    raise NotImplementedError("write the padded batch with ignore_index targets")


if __name__ == "__main__":
    show(batch_tensors, [[26, 4, 12, 12, 0, 26], [26, 23, 26]], 16)  # "emma" and "x", BOS = 26
