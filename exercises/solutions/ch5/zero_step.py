"""Exercise 5.3, a worked solution."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import load, show_ranks

chapter3 = load("3_pytorch")
BETA1, BETA2, EPS_ADAM = chapter3.BETA1, chapter3.BETA2, chapter3.EPS_ADAM


def zero_step(weights: torch.Tensor, grads: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int,
              lr_t: float) -> None:
    """One ZeRO step on this rank: weights, m and v updated in place."""
    rank, S = dist.get_rank(), len(m)
    g = torch.empty_like(m)
    dist.reduce_scatter_single(g, grads)  # (S,): shard `rank` of the sum of every rank's gradients
    m.mul_(BETA1).add_((1 - BETA1) * g)
    v.mul_(BETA2).add_((1 - BETA2) * g * g)
    m_hat = m / (1 - BETA1 ** (step + 1))  # bias correction: m and v started at 0
    v_hat = v / (1 - BETA2 ** (step + 1))
    shard = weights[rank * S:(rank + 1) * S] - lr_t * m_hat / (v_hat.sqrt() + EPS_ADAM)
    dist.all_gather_single(weights, shard)  # (N * S,): every rank's new shard, in rank order


def example(rank: int) -> list:  # 2 ranks, 4 weights of 1.0: rank r's gradients all r + 1, fresh moments
    return [torch.ones(4), torch.full((4,), rank + 1.0), torch.zeros(2), torch.zeros(2), 0, 0.01]


if __name__ == "__main__":
    show_ranks(zero_step, 2, example)
