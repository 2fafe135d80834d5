"""The views ask the stages; they never reach in (SPEC.md, "Every main.py": named values).

What draws or checks a stage -- the one-step page, the diagrams, the exercises' checker, the
tests -- reads it through its `train`, its named values (`keep`, shared/keep.py) and the
functions a chapter teaches. It does not quote a stage's source lines, does not wrap a stage's
functions to count their calls, and does not copy a stage's training loop: each of those breaks
the day a stage renames or reshapes a helper.
"""

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from shared.keep import keep, keeping
from tools import stages

STAGES = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton"]
VIEWS = sorted([REPO_ROOT / "report" / "step_page.py", REPO_ROOT / "report" / "diagrams.py",
                *(REPO_ROOT / "exercises" / "checker").glob("*.py"), *(REPO_ROOT / "tests").glob("*.py")])
SHORTEST_QUOTE = 24  # shorter strings ("wte", "--steps", "loss.backward()") are names, not lines
CONTRACT = {"runner.main(__file__, FLAGS, train, sample)"}  # SPEC.md: every main.py's last line
NAMES = ["x0", "x1", "h_attn", "scores", "attn", "y", "x2", "h_mlp", "relu", "x3", "logits"]


def stage_lines() -> set[str]:
    lines = set()
    for path in [*(REPO_ROOT / stage / "main.py" for stage in STAGES), REPO_ROOT / "4_triton" / "fused_step.py"]:
        lines |= {line.split("  #")[0].strip() for line in path.read_text().splitlines()}
    return {line for line in lines if len(line) >= SHORTEST_QUOTE}


def strings(tree: ast.AST) -> list[ast.Constant]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def solution_lines() -> set[str]:
    """The worked solutions' lines: the exercises' tests quote them to make a learner's slips."""
    return {line.strip() for path in (REPO_ROOT / "exercises" / "solutions").rglob("*.py")
            for line in path.read_text().splitlines()}


def test_no_view_quotes_a_stage_s_source_line():
    """No view holds a whole line of a stage's code (a statement, without its comment) as a
    string: the old page found its boxes by such lines, and broke whenever one moved."""
    lines = stage_lines() - solution_lines() - CONTRACT
    quoted = [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}"
              for path in VIEWS for node in strings(ast.parse(path.read_text()))
              if node.value.strip() in lines]
    assert not quoted, "these views quote a stage's code; read it through keep() and train() instead:\n" + \
        "\n".join(quoted)


def calls_in(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            function = call.func
            names.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
    return names


def test_no_view_copies_a_training_loop():
    """A loop that runs backward and an optimizer step is a training loop: a view calls the
    stage's own `train` (tools/stages.py's train_keeping, or runner.start) instead."""
    copies = [f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
              for path in VIEWS for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.For | ast.While) and "backward" in calls_in(node)
              and calls_in(node) & {"adam_step", "step", "zero_grad"}]
    assert not copies, "these views copy a training loop:\n" + "\n".join(copies)


def test_no_view_wraps_a_stage_s_functions_to_count_their_calls():
    """Forward hooks and call recorders pick a value by the position of a call ("the third
    rmsnorm"): the stage's named values say which value is which."""
    wrapping = [f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
                for path in VIEWS if path.name != Path(__file__).name
                for number, line in enumerate(path.read_text().splitlines(), start=1)
                if "register_forward_hook" in line or "calls.append(" in line]
    assert not wrapping, "\n".join(wrapping)


def test_the_detector_finds_what_it_forbids():
    """The three checks above catch a quoted line, a copied loop and a call recorder."""
    line = next(line for line in sorted(stage_lines() - solution_lines() - CONTRACT) if line.startswith("x = "))
    quote = ast.parse(f"LINE = {line!r}")
    assert strings(quote)[0].value.strip() in stage_lines()
    loop = ast.parse("for step in range(3):\n    loss.backward()\n    adam_step(flat, grad, m, v, step, 3)\n")
    assert "backward" in calls_in(loop.body[0]) and "adam_step" in calls_in(loop.body[0])


def test_keep_hands_the_value_back_and_records_only_inside_keeping():
    value = [1.0, 2.0]
    assert keep("x0", value) is value
    with keeping() as kept:
        assert keep("x0", value) is value
    assert [record.value for record in kept["x0"]] == [value]
    assert kept["x0"][0].function == "test_keep_hands_the_value_back_and_records_only_inside_keeping"
    assert kept["x0"][0].file == "tests/test_views.py"
    with keeping() as again:
        pass
    assert again == {}


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_keeps_spec_s_names_at_the_lines_that_compute_them(stage):
    """One step of each stage's own train, keeping: every name SPEC.md lists that the stage holds
    is there, once per layer (stage 1: once per position), and points at a line of its main.py
    that calls keep with that name."""
    argv = {"1_pure_python": [], "3_pytorch": ["--device", "cpu"]}.get(stage, [])
    _, run, kept = stages.train_keeping(stage, [*argv, "--steps", "1"], documents=["emma"])
    T = len("emma") + 1
    source = (REPO_ROOT / stage / "main.py").read_text().splitlines()
    fused = {"2_numpy": {"scores", "attn"}, "3_pytorch": {"scores", "attn"}, "4_triton": {"scores", "attn"}}
    for name in NAMES:
        if name in fused.get(stage, ()):
            assert name not in kept, f"{stage} keeps {name}, which it computes inside a fused op"
            continue
        assert name in kept, f"{stage} keeps no {name!r}"
        per_layer = T * (run.config.n_head if name in ("scores", "attn") else 1) if stage == "1_pure_python" else 1
        assert len(kept[name]) == per_layer, (stage, name, len(kept[name]))
        record = kept[name][0]
        assert record.file == f"{stage}/main.py"
        assert f'keep("{name}"' in source[record.line - 1], (stage, name, source[record.line - 1])
