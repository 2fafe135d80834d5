"""`python -m report` under bad input: a real command line, one line and a non-zero exit for
every mistake, and no README changed by a run that failed or only asked for help."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def report(folder, *argv) -> subprocess.CompletedProcess:
    """`python -m report ARGV` on a folder of READMEs and results files of a test's own."""
    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\nfrom pathlib import Path\n"
            f"from report import readmes\nreadmes.REPO_ROOT = Path({str(folder)!r})\n"
            f"sys.exit(readmes.main({list(argv)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["--chek"], 2), (["extra"], 2)])
def test_help_and_typos_change_no_readme(argv, code):
    """`python -m report --help` prints its usage; a typo is a usage error; neither writes."""
    before = {path: path.read_bytes() for path in REPO_ROOT.glob("**/README.md") if ".venv" not in path.parts}
    proc = subprocess.run([sys.executable, "-m", "report", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == code, proc.stderr
    assert ("usage: python -m report" in proc.stdout) if code == 0 else ("(see --help)" in one_line(proc.stderr))
    assert {path: path.read_bytes() for path in before} == before


def results_file(folder, **changes) -> None:
    res = json.loads((REPO_ROOT / "2_numpy" / "results.json").read_text())
    res.update(changes)
    (folder / "r.json").write_text(json.dumps(res).replace("Infinity", "1e999"))
    (folder / "README.md").write_text("<!-- BEGIN figures r.json -->\n<!-- END figures -->\n")


@pytest.mark.parametrize("changes, message", [
    ({"total_s": float("nan")}, "total_s is nan"),
    ({"total_s": -5}, "total_s is -5"),
    ({"num_params": -1}, "num_params is -1"),
])
def test_numbers_no_run_can_make_never_reach_a_readme(tmp_path, changes, message):
    results_file(tmp_path, **changes)
    before = (tmp_path / "README.md").read_text()
    for argv in ([], ["--check"]):
        proc = report(tmp_path, *argv)
        assert proc.returncode == 1 and message in one_line(proc.stderr), proc.stderr
    assert (tmp_path / "README.md").read_text() == before


def test_readmes_that_are_not_ours_to_read_are_left_alone(tmp_path):
    """A learner's notes in Latin-1 and a folder named README.md are not the repository's
    READMEs; a README with a generated block in another encoding is one line."""
    results_file(tmp_path)
    assert report(tmp_path).returncode == 0  # the block rendered
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_bytes("caf\xe9 notes\n".encode("latin-1"))
    (tmp_path / "odd" / "README.md").mkdir(parents=True)
    assert report(tmp_path, "--check").returncode == 0
    (tmp_path / "notes" / "README.md").write_bytes(b"<!-- BEGIN figures r.json -->\n\xe9\n<!-- END figures -->\n")
    proc = report(tmp_path, "--check")
    assert proc.returncode == 1 and "is not UTF-8" in one_line(proc.stderr)


def test_a_read_only_readme_is_one_line_and_nothing_is_written(tmp_path):
    results_file(tmp_path)
    (tmp_path / "README.md").chmod(0o444)
    proc = report(tmp_path)
    assert proc.returncode == 1 and "is read-only" in one_line(proc.stderr)
    assert "BEGIN figures r.json -->\n<!-- END" in (tmp_path / "README.md").read_text()


def test_sittings_a_block_cannot_read_are_one_line(tmp_path):
    """A loss table whose losses overflow exp(); a garbage-collector sitting without its
    collector-off run."""
    shutil.copytree(REPO_ROOT / "1_pure_python", tmp_path / "1_pure_python",
                    ignore=lambda folder, names: [n for n in names if n != "results.json"])
    meaning = json.loads(next((REPO_ROOT / "benchmarks" / "results").glob("loss-meaning-*.json")).read_text())
    meaning.update(trained_mean_loss=1000.0, bigram_loss=1e300)
    (tmp_path / "m.json").write_text(json.dumps(meaning))
    (tmp_path / "README.md").write_text("<!-- BEGIN losses m.json -->\n<!-- END losses -->\n")
    proc = report(tmp_path, "--check")
    assert proc.returncode == 1 and "m.json" in one_line(proc.stderr)
    gc = json.loads(next((REPO_ROOT / "benchmarks" / "results").glob("gc-stage1-*.json")).read_text())
    gc["runs"] = [run for run in gc["runs"] if run["collector"]]
    (tmp_path / "g.json").write_text(json.dumps(gc))
    (tmp_path / "README.md").write_text("<!-- BEGIN gc g.json -->\n<!-- END gc -->\n")
    proc = report(tmp_path, "--check")
    assert proc.returncode == 1 and "one with it off" in one_line(proc.stderr)


@pytest.mark.parametrize("program", [["-m", "report.notebooks"], ["-m", "report.benchmark_plots"],
                                     ["-m", "report.step_page"], ["-m", "report.diagrams"],
                                     ["tools/install_size.py"], ["tools/time_quick_start.py"]])
def test_every_tool_that_writes_answers_help_and_writes_nothing(program):
    """--help prints a usage and changes no tracked file (some tools wrote their figures, or ran a
    whole measurement, whatever they were asked); a typo is a usage error."""
    def status():  # every output such a tool writes, by its modification time
        found = {}
        for folder, subfolders, files in os.walk(REPO_ROOT):
            subfolders[:] = [f for f in subfolders if not f.startswith(".") and f != "__pycache__"]
            for name in files:
                if name.endswith((".png", ".json", ".ipynb", ".html", ".md", ".cpp")):
                    found[os.path.join(folder, name)] = os.stat(os.path.join(folder, name)).st_mtime_ns
        return found
    before = status()
    proc = subprocess.run([sys.executable, *program, "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "usage:" in proc.stdout
    proc = subprocess.run([sys.executable, *program, "--no-such-flag"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "(see --help)" in proc.stderr
    assert status() == before
