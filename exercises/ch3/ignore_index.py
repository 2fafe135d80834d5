"""Exercise 3.4 -- a padded batch for F.cross_entropy, padding left out by ignore_index.

Make (inputs, targets) as torch long tensors (B, T): each name's first n = min(block_size,
len - 1) positions, inputs padded with 0 and targets with -100, the value F.cross_entropy's
`ignore_index` leaves out of the mean. The check trains chapter 3's model one step on your
batch and compares its loss with chapter 2's.

    python exercises/check.py 3.4

Hint: padding a target with 0 would make the loss count the padded positions as predictions
of the letter 'a'.
"""

import torch  # noqa: F401  (you will need it)

from shared.tokenizer import positions  # noqa: F401  (you will need it)

PADDING = -100


def batch_tensors(batch: list[list[int]], block_size: int):
    """(inputs, targets), each (B, T) torch.long."""
    raise NotImplementedError("write the padded batch with ignore_index targets")
