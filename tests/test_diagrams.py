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
