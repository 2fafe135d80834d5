"""Exercise 2.4, a worked solution (chapter 2's `batch_arrays`, written out)."""

import numpy as np

from shared.tokenizer import positions


def batch_arrays(batch: list[list[int]], block_size: int):
    n = [positions(tokens, block_size) for tokens in batch]
    T = max(n)
    inputs = np.zeros((len(batch), T), dtype=np.int64)
    targets = np.zeros((len(batch), T), dtype=np.int64)
    for b, tokens in enumerate(batch):
        inputs[b, :n[b]] = tokens[:n[b]]
        targets[b, :n[b]] = tokens[1:n[b] + 1]
    real = np.arange(T)[None, :] < np.array(n)[:, None]
    return inputs, targets, real
