"""Each stage's gradients after `loss.backward()`, under SPEC.md's names, as NumPy arrays:
how the tests read what every stage stores its own way (Value.grad per scalar, one flat
buffer, nn.Linear's stacked q/k/v, a flat buffer written by kernels)."""

import numpy as np

from shared.weights import param_offsets, param_shapes


def from_flat(flat, config) -> dict[str, np.ndarray]:
    """Split a flat buffer in SPEC.md's order back into its named matrices."""
    flat = np.asarray(flat)
    offsets = param_offsets(config)
    return {name: flat[offsets[name][0]:offsets[name][0] + rows * cols].reshape(rows, cols)
            for name, (rows, cols) in param_shapes(config)}


def stage1(params) -> dict[str, np.ndarray]:
    return {name: np.array([[p.grad for p in row] for row in matrix]) for name, matrix in params.items()}


def stage3(model) -> dict[str, np.ndarray]:
    """An nn.Module's parameters, in order, are SPEC.md's flat buffer (stage 3 stacks wq, wk, wv
    into one matrix in that order), so their gradients end to end are too."""
    return from_flat(np.concatenate([p.grad.detach().cpu().numpy().ravel() for p in model.parameters()]), model.config)


def stage4(model) -> dict[str, np.ndarray]:
    return from_flat(model.params.flat_grad.cpu().numpy(), model.config)
