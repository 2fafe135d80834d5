"""Exercise 3.4, a worked solution (chapter 3's `batch_tensors`)."""

import torch

from shared.tokenizer import positions

PADDING = -100


def batch_tensors(batch: list[list[int]], block_size: int):
    n = [positions(tokens, block_size) for tokens in batch]
    T = max(n)
    inputs = torch.tensor([tokens[:k] + [0] * (T - k) for tokens, k in zip(batch, n)], dtype=torch.long)
    targets = torch.tensor([tokens[1:k + 1] + [PADDING] * (T - k) for tokens, k in zip(batch, n)], dtype=torch.long)
    return inputs, targets
