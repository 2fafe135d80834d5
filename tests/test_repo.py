"""Repository-wide promises: CI runs the README's test command, README figures come from
results files, stage 1 and shared/ need nothing beyond the standard library, and the
committed results are full runs of the SPEC configuration."""

import ast
import json
import re
import sys

import pytest

from conftest import REPO_ROOT
from shared import report

SPEC_CONFIG = {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 16, "steps": 1000, "seed": 42}


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    assert len(quick_start) == 2, "the quick start is exactly two commands"
    test_command = quick_start[1].strip()
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci]


def test_readme_figures_match_results_files():
    """Every generated block in every README equals what its results file says now."""
    blocks = 0
    for path in report.readmes():
        text = path.read_text()
        blocks += len(report.BLOCK.findall(text))
        assert report.render(text) == text, f"{path} is stale: run python -m shared.report"
    assert blocks >= 1


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("path", ["1_pure_python/main.py", *[
    f"shared/{p.name}" for p in sorted((REPO_ROOT / "shared").glob("*.py")) if p.name != "plotting.py"]])
def test_standard_library_only(path):
    outside = {m for m in _imported_modules(REPO_ROOT / path)
               if m not in sys.stdlib_module_names and m != "shared"}
    assert not outside, f"{path} imports {outside}"


@pytest.mark.parametrize("stage", ["1_pure_python"])
def test_committed_results_are_full_spec_runs(stage):
    res = json.loads((REPO_ROOT / stage / "results.json").read_text())
    assert "partial" not in res
    assert {k: res["config"][k] for k in SPEC_CONFIG} == SPEC_CONFIG
    assert res["num_params"] == 4192
    assert len(res["losses"]) == len(res["step_ms"]) == 1000
    assert len(res["samples"]) == 20
    assert res["env"]["device"] and res["env"]["cpu"] and res["env"]["date"]


def test_stage1_results_reproduce_microgpt():
    res = json.loads((REPO_ROOT / "1_pure_python" / "results.json").read_text())
    assert round(res["losses"][0], 4) == 3.3660
    assert round(res["losses"][999], 4) == 2.6497
