"""Stage 2: every Tensor op against torch float64 (odd shapes, broadcasting), the whole
model's gradients against stage 1, and the 1000-step trajectory against stage 1's run."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import named_grads
import reference
from conftest import REPO_ROOT, load_stage, stage_losses
from reference import rmsnorm as torch_rmsnorm

stage1 = load_stage("1_pure_python")
stage2 = load_stage("2_numpy")
Tensor = stage2.Tensor
RNG = np.random.default_rng(0)


def check_op(op, torch_op, *arrays, atol=1e-12):
    """op(*Tensors) and torch_op(*tensors) agree in value and in the gradient of a random
    weighted sum of the output, for every input."""
    tensors = [Tensor(a.copy()) for a in arrays]
    out = op(*tensors)
    weights = RNG.standard_normal(out.data.shape)
    (out * Tensor(weights)).sum().backward()
    torch_inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    torch_out = torch_op(*torch_inputs)
    (torch_out * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(out.data, torch_out.detach().numpy(), rtol=0, atol=atol)
    for t, ref in zip(tensors, torch_inputs):
        np.testing.assert_allclose(t.grad, ref.grad.numpy(), rtol=0, atol=atol)


def randn(*shape):
    return RNG.standard_normal(shape)


@pytest.mark.parametrize("a_shape, b_shape", [((5, 7), (5, 7)), ((5, 7), (7,)), ((5, 7), (5, 1)),
                                              ((1, 7), (3, 1)), ((3,), ())])
def test_add_and_mul_with_broadcasting(a_shape, b_shape):
    a, b = randn(*a_shape), randn(*b_shape)
    check_op(lambda x, y: x + y, lambda x, y: x + y, a, b)
    check_op(lambda x, y: x * y, lambda x, y: x * y, a, b)
    check_op(lambda x, y: x - y, lambda x, y: x - y, a, b)


def test_neg_and_sum():
    check_op(lambda x: -x, lambda x: -x, randn(4, 3))
    x = Tensor(randn(4, 3))
    x.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((4, 3)))


@pytest.mark.parametrize("shape, n_out", [((1, 1, 16), 16), ((1, 5, 7), 3), ((1, 16, 16), 64), ((3, 13, 64), 16),
                                          ((2, 4, 5), 6)])
def test_linear(shape, n_out):
    check_op(stage2.linear, lambda x, w: x @ w.T, randn(*shape), randn(n_out, shape[-1]))


def test_relu():
    x = randn(2, 6, 5)
    x[0, 0, 0] = 0.0  # at zero both conventions give gradient 0
    check_op(stage2.relu, torch.relu, x)


@pytest.mark.parametrize("shape", [(1, 1, 16), (1, 5, 7), (1, 16, 16), (3, 4, 64)])
def test_rmsnorm(shape):
    check_op(stage2.rmsnorm, torch_rmsnorm, randn(*shape))


@pytest.mark.parametrize("tokens", [[[3]], [[0, 4, 4, 2, 0]], [[5, 1, 5, 5], [5, 2, 0, 1]]])
def test_embed_scatters_repeated_tokens(tokens):
    ids = np.asarray(tokens)  # (B, T): a token repeated within and across documents sums its gradients
    check_op(lambda wte, wpe: stage2.embed(wte, wpe, ids),
             lambda wte, wpe: wte[torch.tensor(ids)] + wpe[:ids.shape[1]], randn(6, 5), randn(9, 5))


@pytest.mark.parametrize("B, T, n_head, head_dim", [(1, 1, 4, 4), (1, 5, 4, 4), (1, 16, 4, 4), (1, 7, 3, 2),
                                                    (1, 4, 1, 5), (3, 6, 4, 4), (2, 5, 3, 2)])
def test_causal_attention(B, T, n_head, head_dim):
    qkv = randn(B, T, 3 * n_head * head_dim)
    check_op(lambda x: stage2.causal_attention(x, n_head), lambda x: reference.causal_attention(x, n_head), qkv)


@pytest.mark.parametrize("B, T, V", [(1, 1, 27), (1, 5, 11), (1, 16, 27), (3, 6, 27)])
def test_cross_entropy_over_real_positions(B, T, V):
    """Padding (positions past a document's end) adds nothing to the loss and gets no gradient."""
    targets = RNG.integers(0, V, (B, T))
    real = np.arange(T) < np.array([T, max(1, T - 2), 1][:B])[:, None]
    logits = randn(B, T, V) * 3
    check_op(lambda x: stage2.cross_entropy(x, targets, real),
             lambda x: F.cross_entropy(x[torch.tensor(real)], torch.tensor(targets[real])), logits)


# ---------------------------------------------------------------------------- whole model


def test_model_gradients_equal_stage1(setup):
    tokenizer, config, docs, state = setup
    for doc in (docs[1], "christopheralexander"):
        tokens = tokenizer.encode_doc(doc)
        p1 = stage1.make_params(state)
        loss1 = stage1.batch_loss([tokens], p1, config)
        loss1.backward()
        _, p2 = stage2.make_params(state, config)
        loss2 = stage2.batch_loss([tokens], p2, config)
        loss2.backward()
        assert float(loss2.data) == pytest.approx(loss1.data, abs=1e-12)
        grads2 = named_grads.from_flat(stage2.flat_grad(p2), config)
        for name, grads1 in named_grads.stage1(p1).items():
            np.testing.assert_allclose(grads2[name], grads1, rtol=0, atol=1e-10, err_msg=name)


def test_1000_steps_equal_stage1_run_at_every_step():
    """Stage 2's own training loop, float64, against stage 1's committed run: microgpt's
    losses at every step, ending at its published 2.6497."""
    stage1_losses = json.loads((REPO_ROOT / "1_pure_python" / "results.json").read_text())["losses"]
    losses = stage_losses("2_numpy", 1000, "--dtype", "float64")
    assert [round(x, 4) for x in losses[:3]] == [3.3660, 3.4243, 3.1778]
    np.testing.assert_allclose(losses, stage1_losses, rtol=0, atol=1e-6)
    assert round(losses[-1], 4) == 2.6497


def test_float32_run_ends_near_float64():
    losses = stage_losses("2_numpy", 1000, "--dtype", "float32")
    assert abs(losses[-1] - 2.6497) < 0.01


def graph_nodes(root) -> list:
    seen, stack = {id(root): root}, [root]
    while stack:
        for child in stack.pop()._children:
            if id(child) not in seen:
                seen[id(child)] = child
                stack.append(child)
    return list(seen.values())


def test_float32_step_stays_float32(setup):
    """--dtype float32 means float32: every array of a step's graph, every gradient, and Adam's
    state (NumPy 2 promotes a float32 array to float64 when it meets a NumPy float64 scalar, an
    int64 count or a float64 mask)."""
    tokenizer, config, docs, state = setup
    flat, params = stage2.make_params(state, config, np.float32)
    loss = stage2.batch_loss([tokenizer.encode_doc(doc) for doc in docs[:3]], params, config)
    loss.backward()
    nodes = graph_nodes(loss)
    assert len(nodes) > 20
    assert {str(node.data.dtype) for node in nodes} == {"float32"}
    assert {str(node.grad.dtype) for node in nodes} == {"float32"}
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    stage2.adam_step(flat, stage2.flat_grad(params), m, v, 0, 1000)
    assert flat.dtype == m.dtype == v.dtype == np.float32


def test_the_chapters_worked_examples_print_what_the_readme_says():
    """Chapter 2's NumPy primer and its 2x3 linear layer by hand: each block runs from the
    chapter's folder and prints exactly the output the README shows beside it; and the hand
    arithmetic (dL/dx = g W, dL/dW = g^T x with g = 2y) gives the same numbers again."""
    from conftest import run_worked_examples

    blocks = run_worked_examples("2_numpy")
    assert len(blocks) == 2
    x = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]])
    W = np.array([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.0]])
    g = 2 * x @ W.T
    printed = blocks[1].splitlines()
    assert eval(printed[1]) == (g @ W).tolist() and eval(printed[2]) == (g.T @ x).tolist()
    assert (g.T @ x)[0, 1] == 0  # "the two positions ... cancel"
