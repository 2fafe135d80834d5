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
    grads = {"wte": model.wte.weight.grad, "wpe": model.wpe.weight.grad, "lm_head": model.lm_head.weight.grad}
    for i, block in enumerate(model.layers):
        p = f"layer{i}."
        grads.update(zip((p + "attn_wq", p + "attn_wk", p + "attn_wv"), block.attn.attn_wqkv.weight.grad.chunk(3)))
        grads[p + "attn_wo"] = block.attn.attn_wo.weight.grad
        grads[p + "mlp_fc1"] = block.mlp.mlp_fc1.weight.grad
        grads[p + "mlp_fc2"] = block.mlp.mlp_fc2.weight.grad
    return {name: g.detach().cpu().numpy() for name, g in grads.items()}


def stage4(model) -> dict[str, np.ndarray]:
    return from_flat(model.params.flat_grad.cpu().numpy(), model.config)
