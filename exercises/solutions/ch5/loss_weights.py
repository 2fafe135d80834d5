"""Exercise 5.2, a worked solution."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show_ranks

PADDING = -100  # a target that is no position (chapter 3's F.cross_entropy ignore_index)


def loss_weights(micro_targets: list[torch.Tensor]) -> list[float]:
    """This rank's weight for the mean loss of each of its micro-batches."""
    positions = torch.tensor([float((targets != PADDING).sum()) for targets in micro_targets], dtype=torch.float64)
    step = positions.sum()  # this rank's positions ...
    dist.all_reduce(step)  # ... summed over the ranks: the step's
    return (positions / step).tolist()  # a micro-batch's mean, times its positions over the step's: its part


# rank 0: 2 micro-batches, of 3 and 4 positions; rank 1: 1 micro-batch, of 2 positions
EXAMPLE = [[[1, 2, 3, -100], [4, 5, 6, 7]], [[8, 9, -100, -100]]]

if __name__ == "__main__":
    show_ranks(loss_weights, 2, lambda rank: [[torch.tensor([row]) for row in EXAMPLE[rank]]])
