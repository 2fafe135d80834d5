"""Exercise 5.3 -- one ZeRO step: reduce-scatter, Adam on this rank's shard, all-gather.

Chapter 5's ZeRO ('ZeRO: Adam's memory split over the ranks', and `ZeroByHand` in
5_distributed/main.py) keeps Adam's two moments for 1/N of the weights on each rank. Write
one step of it for one rank, in place:
1. the gradients summed over the ranks, but only for this rank's shard: rank r's shard is
   numbers r*S to r*S + S - 1 of the flat buffers, S = len(m) = len(weights) // N;
2. Adam written out (chapter 1's formula, your 1.3, with chapter 3's betas and eps; not
   torch.optim.Adam) on that shard, with its moments m and v;
3. every rank's updated shard sent to every rank, so every rank holds all the new weights.

Collectives that do this: `dist.reduce_scatter_single(output, input)` (rank r's `output`
receives shard r of the sum of every rank's `input`) and `dist.all_gather_single(output,
input)` (every rank's `input`, concatenated in rank order, into every rank's `output`).
The check runs yours on 1 to 4 ranks and compares every rank's weights and moments with Adam
on the summed gradients, in float64.

Shapes: weights and grads are flat (N * S,), the same weights on every rank and this rank's own
gradients; m and v are (S,), this rank's moments; step is 0-based; lr_t is this step's
learning rate. Update weights, m and v in place; return nothing.

    python exercises/ch5/zero_step.py          # try yours on 2 ranks
    python exercises/check.py 5.3              # check it
    python exercises/check.py 5.3 --hint       # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist  # noqa: F401  (you will need it)

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show_ranks

chapter3 = load("3_pytorch")
BETA1, BETA2, EPS_ADAM = chapter3.BETA1, chapter3.BETA2, chapter3.EPS_ADAM


def zero_step(weights: torch.Tensor, grads: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int,
              lr_t: float) -> None:
    """One ZeRO step on this rank: weights, m and v updated in place."""
    raise NotImplementedError("write the step: reduce-scatter, Adam on the shard, all-gather")


def example(rank: int) -> list:  # 2 ranks, 4 weights of 1.0: rank r's gradients all r + 1, fresh moments
    return [torch.ones(4), torch.full((4,), rank + 1.0), torch.zeros(2), torch.zeros(2), 0, 0.01]


if __name__ == "__main__":
    show_ranks(zero_step, 2, example)
