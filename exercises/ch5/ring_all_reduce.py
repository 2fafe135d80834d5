"""Exercise 5.1 -- the ring all-reduce, written with send and recv.

Chapter 5 sums the ranks' gradients with one `dist.all_reduce`. Write it yourself: every rank
calls `ring_all_reduce(buffer)` with its own buffer, and when it returns, every rank's buffer
holds the sum of all of them, as after `dist.all_reduce(buffer)`. Do it the way the chapter's
'The ring all-reduce' section draws it: cut the buffer into N chunks with
`buffer.tensor_split(N)` (chunk sizes differ by at most one), then N - 1 steps of reduce-scatter
and N - 1 steps of all-gather, each step every rank sending one chunk to the next rank,
(rank + 1) % N, and receiving one from the previous, (rank - 1) % N.

Only point-to-point messages: `dist.send(tensor, dst)` and `dist.recv(tensor, src)`, or their
non-blocking forms `dist.isend` and `dist.irecv` (each returns a request; `.wait()` on it).
`dist.get_rank()` and `dist.get_world_size()` say who this rank is and how many there are.
The check runs yours on 1 to 4 ranks (processes, in one gloo group), counts the bytes each rank
sends and compares them with the ring's 2(N - 1)/N of the buffer.

Shapes: buffer is (P,), float32 or float64, the same P on every rank; sum into it in place.

    python exercises/ch5/ring_all_reduce.py          # try yours on 3 ranks
    python exercises/check.py 5.1                    # check it: 1 to 4 ranks, many sizes
    python exercises/check.py 5.1 --hint             # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist  # noqa: F401  (you will need it)

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show_ranks


def ring_all_reduce(buffer: torch.Tensor) -> None:
    """Sum `buffer` over every rank, in place, with a ring of sends and receives."""
    raise NotImplementedError("write the ring: reduce-scatter, then all-gather")


if __name__ == "__main__":  # rank r's buffer: 7 numbers, r + 1 times 0, 1, ..., 6; after: 6 times each
    show_ranks(ring_all_reduce, 3, lambda rank: [torch.arange(7.0) * (rank + 1)])
