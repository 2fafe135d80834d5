"""Repository-wide promises: CI runs the README's test command and the long checks it leaves
out, README figures come from results files, stage 1 and shared/ need nothing beyond the
standard library, and the committed results are full runs of SPEC.md's configuration as the
code makes it today."""

import ast
import json
import re
import subprocess
import sys

import pytest

from benchmarks.run import STAGE_FILES
from conftest import REPO_ROOT, load_stage
from report import readmes as report
from shared import runner, schema

SPEC_CONFIG = ["n_layer", "n_embd", "n_head", "block_size", "vocab_size", "steps", "seed", "batch_size"]


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory) -> dict:
    """SPEC.md's run as the code makes it today: the results file `python 2_numpy/main.py` writes
    with its default flags (float64: stage 1's arithmetic step for step, tests/test_stage2.py),
    its samples drawn by its own sampler."""
    stage2 = load_stage("2_numpy")
    out = tmp_path_factory.mktemp("spec_run") / "results.json"
    runner.train_and_sample(stage2.__file__, stage2.FLAGS, stage2.train, stage2.sample, ["--out", str(out)])
    return json.loads(out.read_text())


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    assert len(quick_start) == 2, "the quick start is exactly two commands"
    test_command = quick_start[1].strip()
    ci = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci
    # ... and, as steps of their own, what the suite leaves out: the tests marked ci_step, and the
    # ahead-of-time compile of every kernel for every target (its full form: no --quick, no targets)
    assert f"{test_command} -m ci_step" in ci
    assert any(line.startswith(".venv/bin/python tests/aot_compile.py >") for line in ci)


def test_readme_figures_match_results_files():
    """Every generated block in every README equals what its results file says now."""
    blocks = 0
    for path in report.readmes():
        text = path.read_text()
        blocks += len(report.BLOCK.findall(text))
        assert report.render(text) == text, f"{path} is stale: run python -m report"
    assert blocks >= 1


def _imported_modules(path):
    """What a module imports when it loads (its top level; an import inside a function runs only
    when that function does, e.g. the runner's torch for the torch stages)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("path", ["1_pure_python/main.py", *[
    f"shared/{p.name}" for p in sorted((REPO_ROOT / "shared").glob("*.py"))]])
def test_standard_library_only(path):
    outside = {m for m in _imported_modules(REPO_ROOT / path)
               if m not in sys.stdlib_module_names and m != "shared"}
    assert not outside, f"{path} imports {outside}"


def test_shared_stands_below_the_chapters():
    """Floors point one way: nothing in shared/ imports a chapter, the code above the chapters
    (tools/, report/), or names a stage, a kernel constant or an engine's size. A stage declares
    what only it knows in its Flags (tests/test_repo.py's plumbing count keeps that short)."""
    for path in sorted((REPO_ROOT / "shared").glob("*.py")):
        imported = set(_imported_modules(path)) | {
            node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"kernels", "main", "fused_step", "tools", "report", "exercises"}, (path, imported)
        text = path.read_text()
        for word in [*STAGES, "TRITON_INTERPRET", "sys.path.insert", "BYTES_PER_VALUE", "ROWS_PER_PROGRAM",
                     "kernels_per_step"]:
            assert word not in text, (path.name, word)


def test_stage1_trains_without_numpy_or_torch(tmp_path):
    """Stage 1, through the runner, with numpy and torch made unimportable: standard library only."""
    script = ("import runpy, sys\nsys.modules['numpy'] = sys.modules['torch'] = None\n"
              f"sys.argv = ['main.py', '--steps', '2', '--samples', '1', '--out', {str(tmp_path / 'r.json')!r}]\n"
              f"runpy.run_path({str(REPO_ROOT / '1_pure_python' / 'main.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "loss 3.3660" in proc.stdout and json.loads((tmp_path / "r.json").read_text())["samples"]


RESULTS_FILES = ["1_pure_python/results.json", "2_numpy/results.json", "3_pytorch/results.json",
                 "3_pytorch/results_gpu.json", "4_triton/results.json", "4_triton/results_fused.json",
                 "4_triton/results_gpu.json", "4_triton/results_gpu_no_graph.json", "4_triton/results_fused_gpu.json",
                 "4_triton/results_fused_run_gpu.json"]


@pytest.mark.parametrize("path", RESULTS_FILES)
def test_committed_results_are_full_runs_of_the_code_as_it_stands(path, spec_run):
    """Each committed results file (the READMEs' tables and plots read them) reads as a results
    file (shared/schema.py) and is a full run of what the code runs by default: the configuration,
    parameter count, steps and samples of `spec_run`, starting and ending at its losses. A change
    to a default, the initial weights or the arithmetic fails here until the files are made again."""
    res = json.loads((REPO_ROOT / path).read_text())
    assert schema.validate(res) is None and "partial" not in res
    assert {k: res["config"].get(k, 1) for k in SPEC_CONFIG} == {k: spec_run["config"][k] for k in SPEC_CONFIG}
    assert res["num_params"] == spec_run["num_params"] == 4192
    assert len(res["losses"]) == len(res["step_ms"]) == len(spec_run["losses"]) == 1000
    assert len(res["samples"]) == len(spec_run["samples"])
    for step in (0, -1):  # microgpt's 3.3660 and 2.6497, in float64 and float32, on every device
        assert round(res["losses"][step], 4) == round(spec_run["losses"][step], 4), step
    assert res["env"]["device"] and res["env"]["cpu"] and res["env"]["date"]
    if "gpu" in path:
        assert "H100" in res["env"]["device"] and res["env"]["interpreter"] is False
    if path.startswith("4_triton/results") and "gpu" not in path:
        assert res["env"]["interpreter"] is True  # labelled: interpreter timings, not kernel timings


def cited_sittings() -> list[str]:
    """The benchmark files the top-level README quotes: the committed sittings. Runs a reader
    makes (benchmarks/run.py on their machine, --quick smoke runs) are not among them."""
    text = (REPO_ROOT / "README.md").read_text()
    return [path for m in report.BLOCK.finditer(text) if m.group("kind") == "benchmark"
            for path in m.group("path").split(",")]


def test_stage_results_are_runs_of_the_benchmark_sittings():
    """Each stage's results.json and results_gpu*.json is one run recorded in a committed
    benchmark file, so every ratio between them was measured in one sitting."""
    found = set()
    for path in cited_sittings():
        sitting = json.loads((REPO_ROOT / path).read_text())
        runs, on_gpu = sitting["runs"], sitting["env"]["device"] != "cpu"
        for label, name in STAGE_FILES.items():
            if label in runs and on_gpu == ("results_gpu" in name or "fused_" in name):
                stage, filename = name.split(".", 1)
                assert json.loads((REPO_ROOT / stage / filename).read_text()) == runs[label][0], name
                found.add(label)
    assert found == set(STAGE_FILES)


def test_the_code_draws_microgpts_names(spec_run):
    """The trained run samples microgpt's published names, and the float64 runs committed for
    stages 1 and 2 hold exactly the names the code draws today."""
    assert spec_run["samples"][:3] == ["kamon", "ann", "karai"]  # microgpt's published samples
    for stage in ("1_pure_python", "2_numpy"):
        assert json.loads((REPO_ROOT / stage / "results.json").read_text())["samples"] == spec_run["samples"]


def test_check_pins_compares_triton_with_torchs_requirement(monkeypatch):
    """tools/check_pins.py, offline: a triton pin that differs from what the index's torch
    requires on Linux fails in one line; the same pin passes. (The real check asks the index:
    python tools/check_pins.py.)"""
    from tools import check_pins

    def fake_index(torch_requires):
        def dry_run(requirements, extra, index_url):
            names = [r.split("==")[0] for r in requirements]
            items = [{"metadata": {"name": n, "version": "1", "requires_dist": []}} for n in names]
            for item in items:
                if item["metadata"]["name"] == "torch":
                    item["metadata"]["requires_dist"] = [torch_requires, "numpy; extra == 'opt'"]
            return {"install": items}
        return dry_run

    pinned = next(str(r.specifier) for r in check_pins.read_pins() if r.name == "triton")
    marker = 'platform_system == "Linux" and python_version < "3.15"'
    monkeypatch.setattr(check_pins, "dry_run", fake_index(f"triton{pinned}; {marker}"))
    lines = check_pins.check()
    assert len(lines) == 4 and sum("no triton here" in line for line in lines) == 2  # macOS: none needed
    monkeypatch.setattr(check_pins, "dry_run", fake_index(f"triton==0.0.1; {marker}"))
    with pytest.raises(check_pins.PinError, match=r"requires triton==0\.0\.1, requirements.txt pins triton"):
        check_pins.check()


STAGES = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton"]


def section_titles(path) -> list[str]:
    """The section headers of a main.py: the word(s) before the colon under each bar of dashes."""
    return re.findall(r"^# -{88}\n# ([^:\n]+)", path.read_text(), re.M)


def test_every_stage_has_the_same_sections_in_the_order_the_readme_states():
    readme = (REPO_ROOT / "README.md").read_text()
    stated = re.search(r"same headers: \*\*(.*?)\*\*", readme, re.S).group(1).replace("\n", " ")
    expected = [s.strip().capitalize() for s in stated.split(",")]
    assert expected[0] == "Autograd" and len(expected) == 7
    for stage in STAGES:
        assert section_titles(REPO_ROOT / stage / "main.py") == expected, stage


PLUMBING = re.compile(r"time\.perf_counter|TrainingRun|results\.environment|argparse|torch\.cuda\.synchronize|"
                      r"grads_by_name|\bprint\(|sys\.exit|UserError")


RUN_PLUMBING = {"phase", "timed", "end_step", "end_steps", "note", "warm_up"}  # what a step protocol call does
# (run.batches() and run.steps() are the training loop itself, as microgpt's `for step in range(...)`)


def plumbing_lines(source: str) -> dict[int, str]:
    """{line number: kind} of every line of a program that is not its lesson, by kind: the path
    set-up, the import of the runner, the FLAGS declaration, the `__main__` guard and its call,
    and each statement that talks to the run (the `with` line of a timed phase, a whole
    `run.end_step(...)` call)."""
    tree = ast.parse(source)
    lines = {}

    def mark(node, kind, header_only=False):
        for n in range(node.lineno, (node.lineno if header_only else node.end_lineno) + 1):
            lines[n] = kind

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "shared" and {a.name for a in node.names} & {
                "program", "runner"}:
            mark(node, "the runner's import")
        elif isinstance(node, ast.Expr) and "sys.path.insert" in ast.unparse(node):
            mark(node, "the path")
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FLAGS" for t in node.targets):
            mark(node, "FLAGS")
        elif isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            mark(node, "the __main__ guard")
        elif isinstance(node, ast.With) and any(
                isinstance(item.context_expr, ast.Call) and ast.unparse(item.context_expr.func).startswith("run.")
                for item in node.items):
            mark(node, "a timed phase", header_only=True)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                ast.unparse(node.value.func) in {f"run.{name}" for name in RUN_PLUMBING}:
            mark(node, "a call to the run")
    code = {n for n, text in enumerate(source.splitlines(), start=1) if text.strip() and
            not text.strip().startswith("#")}
    return {n: kind for n, kind in lines.items() if n in code}


@pytest.mark.parametrize("program", [*(f"{stage}/main.py" for stage in STAGES), "4_triton/fused_step.py"])
def test_a_program_holds_its_lesson_and_the_runner_the_plumbing(program):
    """A chapter's program is its lesson: at most 10 lines of it are anything else, counted by
    kind (plumbing_lines), one more for each training loop after the first (each ends its
    steps with its own run.end_step or run.end_steps), and it has no timers, results file,
    environment capture, argument parsing, device syncs, prints, exits or error handling of its
    own: shared/runner.py and its neighbours own them. Each program hands
    the runner a train(run) and a sample(...)."""
    source = (REPO_ROOT / program).read_text()
    assert not PLUMBING.findall(source), PLUMBING.findall(source)
    other = plumbing_lines(source)
    loops = sum(isinstance(node, ast.Call) and ast.unparse(node.func) in ("run.end_step", "run.end_steps")
                for node in ast.walk(ast.parse(source)))  # calls, not mentions: a comment earns nothing
    assert 1 <= loops <= 2 and len(other) <= 10 + loops - 1, sorted(other.items())
    namespace = {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)} | {
        t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets
        if isinstance(t, ast.Name)}
    assert {"train", "sample"} <= namespace
    assert "runner.main(__file__, FLAGS, train, sample)" in source


def test_the_plumbing_count_sees_what_it_counts():
    """The count above is not a word search: a program with more runner calls counts more lines."""
    source = (REPO_ROOT / "2_numpy" / "main.py").read_text()
    more = source + "\n\ndef more(run):\n    run.note(extra=1)\n    run.end_step(1.0,\n            graph_nodes=2)\n"
    assert len(plumbing_lines(more)) == len(plumbing_lines(source)) + 3
