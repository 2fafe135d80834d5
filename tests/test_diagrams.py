"""The chapters' pictures are drawn by report/diagrams.py from the code they show: each draws,
and what each draws is what the code does."""

import ast

import numpy as np
import pytest

from conftest import REPO_ROOT
from report import diagrams


@pytest.mark.parametrize("stage, draw", [(stage, draw) for stage, draws in diagrams.DIAGRAMS.items()
                                         for draw in draws], ids=lambda x: getattr(x, "__name__", x))
def test_each_picture_draws_and_is_committed(stage, draw, tmp_path):
    path = draw(tmp_path)
    assert path.stat().st_size > 10_000
    assert (REPO_ROOT / stage / path.name).exists(), f"commit {stage}/{path.name}: python -m report.diagrams"


def test_the_forward_pass_names_functions_that_exist():
    """Every function a box of forward_pass.png names is defined in 1_pure_python/main.py."""
    tree = ast.parse((REPO_ROOT / "1_pure_python" / "main.py").read_text())
    defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    source = (REPO_ROOT / "report" / "diagrams.py").read_text()
    named = {"gpt", "rmsnorm", "linear", "softmax", "token_losses", "batch_loss"}
    assert named <= defined
    assert all(f'"{name}' in source for name in named)


def test_the_graph_picture_is_stage2s_real_graph():
    """graph.png draws every node stage 2's backward walks for that name, no more, no fewer."""
    nodes, labels = diagrams.stage2_graph("emma")
    stage2 = diagrams.load_stage("2_numpy")
    tokenizer, config, _, state = diagrams.spec_run()
    _, params = stage2.make_params(state, config)
    assert len(nodes) == stage2.batch_loss([tokenizer.encode_doc("emma")], params, config).backward()
    assert {"linear", "rmsnorm", "causal_attention", "cross_entropy", "embed", "wte"} <= set(labels.values())


def test_adam_steps_do_not_depend_on_the_gradients_scale():
    """What adam.png shows, held: stage 1's adam_step takes nearly the same path whether the loss
    is scaled by 1 or 1/100 (only eps differs), while gradient descent slows a hundredfold."""
    demo = diagrams.adam_demo()
    adam_1, descent_1 = demo["paths"][1.0]
    adam_100, descent_100 = demo["paths"][0.01]
    np.testing.assert_allclose(adam_1, adam_100, atol=1e-4)
    assert abs(descent_1[-1] - 3) < 0.05 and descent_100[-1] < 0.5


def test_the_attention_picture_is_the_models_attention():
    """attention.png draws what stage 2 computes: weights @ values is exactly causal_attention's
    output, rows sum to 1, nothing above the diagonal; and what chapter 1 says of it holds:
    before training the rows from t = 2 on are near uniform, after training some row puts most
    of its weight on one earlier letter."""
    stage2, config, tokenizer, initial, trained = diagrams.trained_stage2()
    tokens = tokenizer.encode_doc(diagrams.ATTENTION_NAME)
    T = len(tokens) - 1
    for params in (initial, trained):
        weights, values, model = diagrams.attention_weights(stage2, params, config, tokens)  # model: y, (T, C)
        np.testing.assert_allclose((weights @ values).transpose(1, 0, 2).reshape(T, -1), model, rtol=1e-12)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
        assert not np.triu(weights, k=1).any()
    before, *_ = diagrams.attention_weights(stage2, initial, config, tokens)
    after, *_ = diagrams.attention_weights(stage2, trained, config, tokens)
    uniform = 1.0 / (np.arange(T) + 1)
    assert np.abs(before[:, 2:, :].max(axis=-1) - uniform[2:]).max() < 0.2
    shown = ["BOS", *diagrams.ATTENTION_NAME]
    assert after[2, T - 1].argmax() == shown.index("b") and after[2, T - 1].max() > 0.5  # "head 2's last row, on b"
