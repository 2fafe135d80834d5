"""Exercise 2.4, a worked solution (chapter 2's `batch_arrays`, written out)."""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

from shared.tokenizer import positions


def batch_arrays(batch: list[list[int]], block_size: int):
    """(inputs, targets, real), each (B, T)."""
    n = [positions(tokens, block_size) for tokens in batch]  # min(block_size, len(tokens) - 1)
    T = max(n)
    inputs = np.zeros((len(batch), T), dtype=np.int64)
    targets = np.zeros((len(batch), T), dtype=np.int64)
    for b, tokens in enumerate(batch):
        inputs[b, :n[b]] = tokens[:n[b]]
        targets[b, :n[b]] = tokens[1:n[b] + 1]
    real = np.arange(T)[None, :] < np.array(n)[:, None]
    return inputs, targets, real


if __name__ == "__main__":
    show(batch_arrays, [[26, 4, 12, 12, 0, 26], [26, 23, 26]], 16)  # "emma" and "x", BOS = 26
