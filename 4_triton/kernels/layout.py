"""Where a training step's inputs lie in device memory, the same for every launch of a run.

The weights are one flat buffer in SPEC.md's order, each matrix at its offset
(shared/weights.py's `param_offsets`), so Adam is one launch over all of them and the
one-kernel step finds every matrix at a constant offset. Each document is one padded row of
block_size + 2 ints, so every batch has the same shape and a kernel reads a document's length
from the row instead of being compiled for it. main.py's per-op step and fused_step.py's
one-kernel step both lay their inputs out here.
"""

import torch

from shared.tokenizer import positions
from shared.weights import param_shapes


def flat_weights(state: dict, config, dtype: torch.dtype, device) -> torch.Tensor:
    """SPEC.md's weights ({name: nested lists}) as one flat tensor, the matrices in SPEC.md's order."""
    flat = torch.cat([torch.tensor(state[name], dtype=dtype).flatten() for name, _ in param_shapes(config)])
    return flat.to(device)


def padded_document(tokens: list[int], block_size: int) -> list[int]:
    """A document as one fixed-size row of block_size + 2 ints: `[n, t_0, ..., t_n, 0, ..., 0]`.

    n = min(block_size, len(tokens) - 1) is the number of positions trained on; inputs are
    row[1 : block_size + 1] and targets row[2 : block_size + 2], of which the first n are real.
    Kernels with static shapes read n from the row and ignore the padding.
    """
    n = positions(tokens, block_size)
    return [n] + tokens[:n + 1] + [0] * (block_size - n)
