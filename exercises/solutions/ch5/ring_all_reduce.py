"""Exercise 5.1, a worked solution."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show_ranks


def exchange(send: torch.Tensor, receive: torch.Tensor, rank: int, world: int) -> None:
    """Send to the next rank and receive from the previous, both at once: gloo's send waits for
    its receiver, so if every rank sent first and received after, every rank would wait."""
    sending = dist.isend(send, (rank + 1) % world)
    receiving = dist.irecv(receive, (rank - 1) % world)
    sending.wait()
    receiving.wait()


def ring_all_reduce(buffer: torch.Tensor) -> None:
    """Sum `buffer` over every rank, in place, with a ring of sends and receives."""
    rank, world = dist.get_rank(), dist.get_world_size()
    chunks = buffer.tensor_split(world)  # N views into buffer: writing into a chunk writes the buffer
    for step in range(world - 1):  # reduce-scatter: add what arrives into one's own copy of that chunk
        send, arriving = chunks[(rank - step) % world], chunks[(rank - step - 1) % world]
        received = torch.empty_like(arriving)
        exchange(send, received, rank, world)
        arriving += received
    for step in range(world - 1):  # all-gather: chunk rank + 1 is complete here; pass complete chunks on
        send, arriving = chunks[(rank + 1 - step) % world], chunks[(rank - step) % world]
        exchange(send, arriving, rank, world)


if __name__ == "__main__":  # rank r's buffer: 7 numbers, r + 1 times 0, 1, ..., 6; after: 6 times each
    show_ranks(ring_all_reduce, 3, lambda rank: [torch.arange(7.0) * (rank + 1)])
