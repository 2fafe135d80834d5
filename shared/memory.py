"""Will a run fit? An estimate from the sizes, made before anything is allocated (SPEC.md, Bad input).

What a training step holds is the model's (SPEC.md fixes it, so its counts are here) times
what its engine keeps per number (which only the stage knows, so the stage says it, in its
`Flags.memory`):

- an engine that builds a graph of scalars keeps an object for every scalar operation of the
  forward pass (`Memory(bytes_per_scalar_op=...)`: a scalar autograd engine's Value);
- an array engine keeps each position's activations and their gradients, in its dtype, and
  the parameters, their gradients and Adam's two moments (`Memory()`); a step that keeps its
  activations in registers keeps only the latter (`Memory(keeps_activations=False)`);
- and anything else the stage allocates (`extra(config, batch_size, itemsize)`).

Every engine also holds the initial weights as Python floats (shared/weights.py).
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from shared.errors import UserError
from shared.weights import GPTConfig, param_shapes

GIB = 2**30
PYTHON_FLOAT = 32  # a float object and its list slot, in the initial weights


@dataclass(frozen=True)
class Memory:
    """How a stage's training step holds memory, in terms the estimate can use."""

    bytes_per_scalar_op: int = 0  # > 0: one object of this size per scalar operation (a graph of scalars)
    keeps_activations: bool = True  # arrays: each position's activations and their gradients
    pads_to_block_size: bool = False  # every document padded to block_size (static shapes), not to the longest
    extra: Callable[[GPTConfig, int, int], int] | None = None  # (config, batch_size, itemsize) -> bytes


def scalar_ops_per_position(config: GPTConfig) -> int:
    """Scalar operations of the forward pass at one position (about): per layer the
    projections (24 C^2), attention over up to T earlier positions (4 T C + 5 H T) and the
    norms; then the logits (2 V C) and the softmax (5 V)."""
    C, T, H, V, L = config.n_embd, config.block_size, config.n_head, config.vocab_size, config.n_layer
    return L * (24 * C * C + 4 * T * C + 5 * H * T + 8 * C) + 2 * V * C + 5 * V


def activations_per_position(config: GPTConfig) -> int:
    """Numbers a position's forward pass keeps for backward (about): 40 C and the attention
    weights (8 H T) per layer, and the logits with their softmax (8 V)."""
    C, T, H, V, L = config.n_embd, config.block_size, config.n_head, config.vocab_size, config.n_layer
    return L * (40 * C + 8 * H * T) + 8 * V


def needed(memory: Memory, config: GPTConfig, batch_size: int, dtype: str, longest: int | None = None) -> int:
    """A generous estimate of the bytes one training step holds at once. Positions are counted
    at the most a step can have: batch_size documents of the longest document's positions
    (`longest`, at most block_size), or of block_size where the stage pads every document to it."""
    params = sum(rows * cols for _, (rows, cols) in param_shapes(config))
    if longest is not None and not memory.pads_to_block_size:
        config = replace(config, block_size=min(config.block_size, longest))  # attention spans what a step has
    positions = batch_size * config.block_size
    total = params * PYTHON_FLOAT
    if memory.bytes_per_scalar_op:
        total += (params + positions * scalar_ops_per_position(config)) * memory.bytes_per_scalar_op
    else:
        itemsize = 8 if dtype == "float64" else 4
        total += 8 * params * itemsize  # the parameters, their gradients, Adam's two moments, and copies
        if memory.keeps_activations:
            total += 2 * positions * activations_per_position(config) * itemsize  # and their gradients
    if memory.extra:
        total += memory.extra(config, batch_size, 8 if dtype == "float64" else 4)
    return total


def available(device) -> tuple[int | None, str]:
    """(bytes free, where) on the device a run allocates on: a CUDA GPU's free memory, else the
    machine's available memory, read from Linux's /proc/meminfo (None elsewhere: macOS,
    Windows, an Apple GPU, where there is nothing to compare with and the check is skipped)."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0], "free on the GPU"
    if getattr(device, "type", "cpu") != "cpu":
        return None, ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available on this machine"
    except OSError:
        pass
    return None, ""


def check(memory: Memory, config: GPTConfig, batch_size: int, dtype: str, device, longest: int | None = None) -> None:
    """Refuse, before allocating anything, a run that cannot fit, in one line with both figures."""
    bytes_needed = needed(memory, config, batch_size, dtype, longest)
    free, where = available(device)
    if free is not None and bytes_needed > free:
        raise UserError(f"this run needs about {bytes_needed / GIB:,.1f} GiB ({config.n_layer} layer(s) of width "
                        f"{config.n_embd}, {batch_size} document(s) per step, block size {config.block_size}) and "
                        f"{free / GIB:,.1f} GiB are {where}; use a smaller --batch-size, --n-embd, --n-layer or "
                        f"--block-size")
