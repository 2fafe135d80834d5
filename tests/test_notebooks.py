"""Each comparison notebook executes headless in fast mode (a few-step rerun written to a
temporary folder), and the committed copy carries its outputs so it renders unexecuted."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO_ROOT
from report import plotting

NOTEBOOKS = {
    "1_pure_python": ["loss.png", "step_time.png", "graph_nodes.png", "gc.png"],
    "2_numpy": ["loss.png", "step_time.png", "graph_nodes.png", "phases.png"],
    "3_pytorch": ["loss.png", "step_time.png", "phases.png", "width_sweep.png", "batch_throughput.png", "compiled.png"],
    "4_triton": ["loss.png", "step_time.png", "launches.png"],
    "5_distributed": ["loss.png", "step_time.png", "timeline.png", "all_reduce.png"],
}
FIRST_LOSS = {"5_distributed": 3.2808}  # its rerun trains 6 names a step (step 1's loss: its README's table)


@pytest.mark.parametrize("stage", NOTEBOOKS)
def test_notebook_executes_in_fast_mode(stage, tmp_path, monkeypatch, names_path):
    monkeypatch.setenv(plotting.FAST_ENV, "1")
    monkeypatch.setenv(plotting.OUT_ENV, str(tmp_path))
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(REPO_ROOT / stage / "compare.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / stage)}}).execute()
    for png in NOTEBOOKS[stage]:
        assert (tmp_path / png).stat().st_size > 10_000, png
    assert json.loads((tmp_path / "last_run.json").read_text())["losses"][0] == pytest.approx(
        FIRST_LOSS.get(stage, 3.366), abs=1e-3)


@pytest.mark.parametrize("stage", NOTEBOOKS)
def test_committed_notebook_has_its_plots(stage):
    nb = nbformat.read(REPO_ROOT / stage / "compare.ipynb", as_version=4)
    images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    assert len(images) >= len(NOTEBOOKS[stage])
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
    for png in NOTEBOOKS[stage]:
        assert (REPO_ROOT / stage / png).exists(), png


def test_a_readers_rerun_changes_no_tracked_file(tmp_path, names_path, monkeypatch):
    """A reader sets RERUN = True and runs a notebook: the run goes to last_run.json (ignored by
    git), the figures are only shown, and git sees no change. In a clone, so this checkout's own
    last_run.json is left alone."""
    import subprocess

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    for var in (plotting.FAST_ENV, plotting.FIGURES_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(clone / "2_numpy" / "compare.ipynb", as_version=4)
    setup = nb.cells[1]
    assert "RERUN = False" in setup.source and "STEPS = 1000" in setup.source
    setup.source = setup.source.replace("RERUN = False", "RERUN = True").replace("STEPS = 1000", "STEPS = 12")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(clone / "2_numpy")}}).execute()
    config = json.loads((clone / "2_numpy" / "last_run.json").read_text())["config"]
    assert (config["steps"], config["stop_after"]) == (1000, 12)  # the first 12 steps of the committed run's schedule
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout


def test_your_run_is_drawn_apart_and_a_bad_one_is_left_out_with_a_line(tmp_path, monkeypatch, capsys):
    """The reader's own last_run.json gets its own label and style (black, dashed) in every plot;
    one cut short (Ctrl-C) or not a results file is left out with one line saying why; and the committed
    figures (MICROGPT_WRITE_FIGURES=1) never include it."""
    for var in (plotting.FAST_ENV, plotting.FIGURES_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(plotting, "REPO_ROOT", tmp_path)
    (tmp_path / "2_numpy").mkdir()
    mine = tmp_path / "2_numpy" / "last_run.json"
    good = json.loads((REPO_ROOT / "2_numpy" / "results.json").read_text())
    mine.write_text(json.dumps(good))
    runs = plotting.load_reader_run("2_numpy", rerun=False)
    (label, res), = runs.items()
    assert label.startswith(plotting.YOURS) and res["losses"] == good["losses"]
    assert plotting.style_of(label, res) == (plotting.YOUR_COLOR, "--")
    assert plotting.style_of("stage 2, NumPy", res) == (plotting.color_of(res), "-")
    monkeypatch.setenv(plotting.FIGURES_ENV, "1")
    assert plotting.load_reader_run("2_numpy", rerun=False) == {}
    monkeypatch.delenv(plotting.FIGURES_ENV)
    capsys.readouterr()
    n = len(good["losses"])
    cut_short = {**{k: v[:20] if isinstance(v, list) and len(v) == n else v for k, v in good.items()}, "partial": True}
    assert plotting.results_problem({**cut_short, "partial": False}) is None  # cut short is all that is wrong
    for broken in ("{not json", json.dumps({**good, "losses": []}), json.dumps({**good, "losses": [float("nan")] * 3}),
                   json.dumps(cut_short)):
        mine.write_text(broken)
        assert plotting.load_reader_run("2_numpy", rerun=False) == {}
        line = capsys.readouterr().out
        assert line.startswith("your last_run.json is left out of the plots: ") and line.count("\n") == 1, line


def test_a_cut_short_results_file_stops_a_notebook_with_one_line_naming_it(tmp_path, monkeypatch):
    """Chapter 4's notebook reading a results file cut short: the error names the file and the fix
    (shared/schema.py), not a raw JSONDecodeError. Its first cells, in a clone."""
    import subprocess

    from nbclient.exceptions import CellExecutionError

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    cut = clone / "4_triton" / "results_gpu.json"
    cut.write_text(cut.read_text()[:500])
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(clone / "4_triton" / "compare.ipynb", as_version=4)
    loading = next(i for i, cell in enumerate(nb.cells) if "results_gpu.json" in cell.source)
    nb.cells = nb.cells[:loading + 1]
    with pytest.raises(CellExecutionError) as failed:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(clone / "4_triton")}}).execute()
    message = str(failed.value).strip().splitlines()[-1]
    assert "results_gpu.json is not complete JSON" in message and "git checkout" in message, message
