"""Bad input through the real command line: one line, non-zero exit, no traceback, nothing
written -- every case through the runner the programs share, and a smoke case per program.
And Ctrl-C keeps the steps done so far."""

import json
import signal
import subprocess
import sys
import time

import pytest
from forkserver import DEFAULT_SIGINT

from conftest import REPO_ROOT
from shared import dataset
from shared.weights import GPTConfig, init_run

STAGES = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton"]


def bad_inputs(tmp_path, names_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\t\n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"anna\n\xff\xfe\xfa\n")
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    read_only = tmp_path / "kept.json"  # a results file its owner made read-only: a rename would replace it
    read_only.write_text("{}")
    read_only.chmod(0o444)
    data = ["--data", str(names_path)]
    return {
        "missing file": (["--data", str(tmp_path / "nope.txt")], 1, "does not exist"),
        "empty file": (["--data", str(empty)], 1, "no non-empty lines"),
        "blank-only file": (["--data", str(blank)], 1, "no non-empty lines"),
        "unreadable line": (["--data", str(binary)], 1, "line 2 is not valid UTF-8"),
        "n_embd not divisible by n_head": ([*data, "--n-embd", "10", "--n-head", "4"], 2, "not divisible"),
        "zero steps": ([*data, "--steps", "0"], 2, "--steps must be positive"),
        "zero batch size": ([*data, "--batch-size", "0"], 2, "--batch-size must be positive"),
        "stop after the schedule's end": ([*data, "--steps", "10", "--stop-after", "11"], 2,
                                          "--stop-after must be from 1 to --steps (10), got 11"),
        "negative batch size": ([*data, "--batch-size", "-3"], 2, "--batch-size must be positive"),
        "negative steps": ([*data, "--steps", "-5"], 2, "--steps must be positive"),
        "out in a missing directory": ([*data, "--out", str(tmp_path / "no" / "r.json")], 1, "does not exist"),
        "out is a directory": ([*data, "--out", str(tmp_path)], 1, "is a directory"),
        "out under a file": ([*data, "--out", str(not_a_dir / "r.json")], 1, "does not exist"),
        "out is read-only": ([*data, "--out", str(read_only)], 1, "is read-only"),
        "negative seed": ([*data, "--seed", "-7"], 2, "--seed must be zero or more"),
        "temperature that overflows": ([*data, "--temperature", "5e-324"], 2, "--temperature must be at least"),
        "data that never ends": (["--data", "/dev/zero"], 1, "is not a regular file"),
    }


CASES = ["missing file", "empty file", "blank-only file", "unreadable line",
         "n_embd not divisible by n_head", "zero steps", "negative steps", "zero batch size", "negative batch size",
         "out in a missing directory", "out is a directory", "out under a file", "out is read-only", "negative seed",
         "temperature that overflows", "data that never ends", "stop after the schedule's end"]


def check_bad_input(script, case, tmp_path, names_path):
    argv, code, message = bad_inputs(tmp_path, names_path)[case]
    out = tmp_path / "results.json"
    if "--out" not in argv:
        argv = [*argv, "--out", str(out)]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / script), *argv], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_stop_after_trains_the_first_steps_of_the_whole_schedule(tmp_path):
    """--stop-after 20 gives the 1000-step run's first 20 losses, bit for bit (stage 2, float64,
    both run here: a second of training); --steps 20, its own shorter schedule, leaves them at
    the third step."""
    runs = {}
    for name, argv in (("whole", []), ("stop", ["--stop-after", "20"]), ("short", ["--steps", "20"])):
        out = tmp_path / f"{name}.json"
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "2_numpy" / "main.py"), *argv, "--samples", "0",
                               "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads(out.read_text())
    whole = runs["whole"]["losses"]
    assert len(whole) == 1000 and runs["stop"]["losses"] == whole[:20]
    assert runs["stop"]["config"]["steps"] == 1000 and runs["stop"]["config"]["stop_after"] == 20
    assert runs["short"]["losses"][:2] == whole[:2] and runs["short"]["losses"][2] != whole[2]
    assert "stop_after" not in runs["short"]["config"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_nonzero_exit(case, tmp_path, names_path):
    """Every case once, through the runner that every program shares (stage 1 starts fastest)."""
    check_bad_input("1_pure_python/main.py", case, tmp_path, names_path)


@pytest.mark.parametrize("case", ["missing file", "n_embd not divisible by n_head"])
@pytest.mark.parametrize("script", [*(f"{stage}/main.py" for stage in STAGES[1:]), "4_triton/fused_step.py"])
def test_every_program_refuses_bad_input_through_the_runner(script, case, tmp_path, names_path):
    """A smoke case of each kind (bad input, usage error) per program: each goes through the runner."""
    check_bad_input(script, case, tmp_path, names_path)


@pytest.mark.parametrize("argv, message", [
    (["--n-embd", "24", "--n-head", "4"], "power of two"),
    (["--launch", "run", "--n-layer", "2"], "one-layer"),
    (["--block-size", "12"], "power of two"),
    (["--steps", "0"], "--steps must be positive"),
    (["--launch", "twice"], "invalid choice"),
])
def test_one_kernel_trainer_refuses_what_it_does_not_implement(argv, message, tmp_path, names_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "4_triton" / "fused_step.py"), "--data", str(names_path),
                           "--out", str(tmp_path / "r.json"), *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("platform, message", [
    ("darwin", "Triton has no macOS build"),
    ("win32", "pip install triton-windows"),
    ("linux", "pip install -r requirements.txt installs Triton"),
])
def test_stage4_without_triton_says_where_it_runs(platform, message, tmp_path, names_path):
    """No Triton (macOS has no build): one line naming the way on, exit 1, nothing written.
    torch loads first, as in main.py; then the platform is faked and triton made unimportable."""
    script = (f"import runpy, sys, torch\nsys.modules['triton'] = None\nsys.platform = {platform!r}\n"
              f"sys.path.insert(0, {str(REPO_ROOT / '4_triton')!r})  # as `python 4_triton/main.py` does\n"
              f"sys.argv = ['main.py', '--data', {str(names_path)!r}, '--out', {str(tmp_path / 'r.json')!r}]\n"
              f"runpy.run_path({str(REPO_ROOT / '4_triton' / 'main.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "stages 1-3" in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", [*(f"{stage}/main.py" for stage in STAGES), "4_triton/fused_step.py"])
def test_a_batch_larger_than_the_dataset_wraps_around(script, tmp_path):
    """Three names, five per step: each step trains all three and two again, in SPEC.md's order."""
    data = tmp_path / "three.txt"
    data.write_text("ab\nbca\ncab\n")
    out = tmp_path / "r.json"
    fused = script.endswith("fused_step.py")  # (its widths are powers of two >= 16)
    width = ["--n-embd", "16", "--n-head", "4"] if fused else ["--n-embd", "8", "--n-head", "2"]
    proc = subprocess.run([sys.executable, str(REPO_ROOT / script), "--data", str(data), "--batch-size", "5",
                           "--steps", "2", "--samples", "0", *width, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["config"]["batch_size"] == 5
    shuffled, _, _ = init_run(["ab", "bca", "cab"], GPTConfig(vocab_size=4), seed=42)  # the run's order
    targets = {name: len(name) + 1 for name in shuffled}  # [BOS] name [BOS]: one target per letter, plus BOS
    # step 0 trains shuffled names 0, 1, 2, 0, 1 and step 1 trains 2, 0, 1, 2, 0
    assert res["doc_len"] == [sum(targets[name] for name in dataset.step_documents(shuffled, step, 5))
                              for step in range(2)]


def test_three_quick_ctrl_c_keep_the_steps_and_say_one_line(tmp_path, names_path):
    """Ctrl-C pressed three times at once in stage 3: the steps are written, marked partial, and
    the one line says where (the second press used to land before the write: nothing on disk,
    and "interrupted" twice)."""
    out = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "3_pytorch" / "main.py"), "--data", str(names_path), "--steps", "1000",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **DEFAULT_SIGINT)
    for line in proc.stdout:
        if line.startswith("step    3 /"):
            break
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0)  # (a few microseconds apart, as a hand on a key: the second lands in the handling)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (130, -signal.SIGINT), stderr  # (a press during Python's own exit: its default)
    assert stderr.strip() == f"interrupted after {len(json.loads(out.read_text())['losses'])} steps; partial " \
                             f"results in {out}", stderr
    assert json.loads(out.read_text())["partial"] is True


@pytest.mark.parametrize("stage", STAGES)
def test_ctrl_c_writes_partial_results(stage, tmp_path, names_path):
    out = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / stage / "main.py"), "--data", str(names_path),
         "--steps", "1000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **DEFAULT_SIGINT)  # even when pytest runs as `pytest &`
    for line in proc.stdout:
        if line.startswith("step    3 /"):
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1 and "partial results" in stderr
    data = json.loads(out.read_text())
    assert data["partial"] is True and len(data["losses"]) >= 3
    assert round(data["losses"][0], 4) == 3.3660
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
