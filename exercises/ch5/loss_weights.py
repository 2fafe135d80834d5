"""Exercise 5.2 -- the weight of each share's loss, when the shares are unequal.

Chapter 3's loss for a step is the mean over the step's target positions (every position of
every name, padding left out). In chapter 5 each rank computes the mean loss of its own share
(chapter 3's model on fewer names), and with `--accumulate k` of each of its k micro-batches,
one after another. Multiplied by the right weights, those means add up, over every rank and
every micro-batch, to the step's mean; so do their gradients, which is what the all-reduce adds.
The chapter's 'One step over two processes, on paper' and 'The classic bug: the mean of the
means' sections say why the weights cannot all be equal.

Write `loss_weights`: a rank gets the targets of its micro-batches (each (b, T), chapter 3's
padding -100 where a name has ended) and returns one weight per micro-batch. A rank sees only its
own names: what it needs from the others, it must ask them for (a collective: `dist.all_reduce`).
The check runs yours on 1 to 4 ranks with real names, shares of unequal size included, and
adds the weighted losses of chapter 3's model up against its loss on the whole step.

Shapes: micro_targets is a list of k tensors (b_j, T_j) of torch.long; return k floats.

    python exercises/ch5/loss_weights.py          # try yours on 2 ranks
    python exercises/check.py 5.2                 # check it
    python exercises/check.py 5.2 --hint          # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist  # noqa: F401  (you will need it)

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show_ranks

PADDING = -100  # a target that is no position (chapter 3's F.cross_entropy ignore_index)


def loss_weights(micro_targets: list[torch.Tensor]) -> list[float]:
    """This rank's weight for the mean loss of each of its micro-batches."""
    raise NotImplementedError("write the weights: this rank's positions over the step's")


# rank 0: 2 micro-batches, of 3 and 4 positions; rank 1: 1 micro-batch, of 2 positions
EXAMPLE = [[[1, 2, 3, -100], [4, 5, 6, 7]], [[8, 9, -100, -100]]]

if __name__ == "__main__":
    show_ranks(loss_weights, 2, lambda rank: [[torch.tensor([row]) for row in EXAMPLE[rank]]])
