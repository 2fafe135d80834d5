"""The newcomer: a fresh clone of the committed tree runs the README's first command with
nothing from outside the clone (no --data, no $MICROGPT_DATA, no network), and the commands
the README documents leave the tests green and the tree unchanged."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def readme_first_command() -> list[str]:
    """The last step of the README's first quick-start line, e.g. `.venv/bin/python 1_pure_python/main.py`."""
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    return shlex.split(quick_start[0].split("&&")[-1])


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("the newcomer test clones this repository, and this copy is not a git checkout")
    path = tmp_path_factory.mktemp("newcomer") / "microgpt"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(path)], check=True, timeout=120)
    return path


def run_in(clone, *argv, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("MICROGPT_DATA", "TRITON_INTERPRET")}
    return subprocess.run([sys.executable, *argv], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_first_command_needs_nothing_outside_the_clone(clone):
    python, script = readme_first_command()
    assert python.endswith("python") and script == "1_pure_python/main.py"
    proc = run_in(clone, script, "--steps", "2", "--samples", "0")
    assert proc.returncode == 0, proc.stderr
    assert "loss 3.3660" in proc.stdout and "loss 3.4243" in proc.stdout  # microgpt's steps 1 and 2
    assert (clone / "1_pure_python" / "last_run.json").exists()


def test_documented_commands_leave_the_tests_green_and_the_tree_clean(clone):
    """After the first command and a quick benchmark, every README still matches its committed
    results files in the clone, and git sees no change: both wrote only to places git ignores."""
    assert run_in(clone, "1_pure_python/main.py", "--steps", "2", "--samples", "0").returncode == 0
    proc = run_in(clone, "benchmarks/run.py", "--quick", "--stages", "2_numpy")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert list((clone / "benchmarks" / "results" / "quick").glob("*-quick.json"))
    proc = run_in(clone, "-m", "report", "--check")  # every README still matches its results files
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
