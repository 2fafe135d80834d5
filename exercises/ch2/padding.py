"""Exercise 2.4 -- a batch of names as rectangular arrays, with a padding mask.

Each tokenized name ([BOS] + letters + [BOS]) trains its first n = min(block_size, len - 1)
positions: inputs tokens[:n], targets tokens[1:n + 1]. Make (inputs, targets, real), each
(B, T) with T the longest name's n, padded with 0 after each name's n positions; real is True
exactly on the n real positions of each row.

    python exercises/check.py 2.4

Hint: `shared/tokenizer.py`'s `positions(tokens, block_size)` gives n.
"""

import numpy as np  # noqa: F401  (you will need it)

from shared.tokenizer import positions  # noqa: F401  (you will need it)


def batch_arrays(batch: list[list[int]], block_size: int):
    """(inputs, targets, real), each (B, T)."""
    raise NotImplementedError("write the padded batch and its mask")
