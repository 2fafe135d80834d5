"""Exercise 3.4, a worked solution (chapter 3's `batch_tensors`)."""

import sys
from pathlib import Path

import torch

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show

from shared.tokenizer import positions

PADDING = -100


def batch_tensors(batch: list[list[int]], block_size: int):
    """(inputs, targets), each (B, T)."""
    n = [positions(tokens, block_size) for tokens in batch]
    T = max(n)
    inputs = torch.tensor([tokens[:k] + [0] * (T - k) for tokens, k in zip(batch, n)], dtype=torch.long)
    targets = torch.tensor([tokens[1:k + 1] + [PADDING] * (T - k) for tokens, k in zip(batch, n)], dtype=torch.long)
    return inputs, targets


if __name__ == "__main__":
    show(batch_tensors, [[26, 4, 12, 12, 0, 26], [26, 23, 26]], 16)  # "emma" and "x", BOS = 26
