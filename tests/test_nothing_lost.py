"""Nothing a user trained is lost, and nothing runs other than what the flags say: through the
real command line, the edges where a run used to lose data, lose a finished run, eat the
machine's memory, or end in a traceback (SPEC.md, "Bad input" and "The results file")."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from forkserver import DEFAULT_SIGINT, real_start  # SIGINT at its default in the child, even under `pytest &`

from conftest import REPO_ROOT, stage_losses

STAGES = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton"]


def program(script, *argv, **kwargs):
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *argv], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 120), **kwargs)


def start(script, *argv, **kwargs):
    return subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / script), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **DEFAULT_SIGINT, **kwargs)


def wait_for(proc, prefix):
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no line starting {prefix!r}: {proc.stderr.read()}")


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# ---------------------------------------------------------------------------- data loss


def test_out_that_is_the_data_file_is_refused(tmp_path, names_path):
    data = tmp_path / "names.txt"
    data.write_bytes(names_path.read_bytes())
    link = tmp_path / "link.json"
    link.symlink_to(data)
    for out in (data, link):
        proc = program("1_pure_python/main.py", "--data", str(data), "--out", str(out), "--steps", "1")
        assert proc.returncode == 1 and "is where this run would write its results" in one_line(proc.stderr)
    assert data.read_bytes() == names_path.read_bytes()


def test_data_where_a_stopped_run_would_go_is_refused(tmp_path, names_path):
    """--data x.partial.json --out x.json, x.json complete: a Ctrl-C would write the steps over the
    names, so the run is refused before it starts."""
    out, data = tmp_path / "x.json", tmp_path / "x.partial.json"
    assert program("2_numpy/main.py", "--data", str(names_path), "--out", str(out), "--steps", "2").returncode == 0
    data.write_bytes(names_path.read_bytes())
    proc = program("2_numpy/main.py", "--data", str(data), "--out", str(out), "--steps", "2")
    assert proc.returncode == 1 and "its steps if it were stopped" in one_line(proc.stderr)
    assert data.read_bytes() == names_path.read_bytes()


def test_out_that_is_not_a_regular_file_is_refused(tmp_path, names_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for out, message in ((str(fifo), "not a regular file (a pipe)"), (f"{tmp_path}/new/", "names a directory")):
        proc = program("1_pure_python/main.py", "--data", str(names_path), "--out", out, "--steps", "1")
        assert proc.returncode == 1 and message in one_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_out_through_a_symlink_writes_the_file_it_points_to(tmp_path, names_path):
    target = tmp_path / "kept.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    proc = program("2_numpy/main.py", "--data", str(names_path), "--out", str(link), "--steps", "2", "--samples", "1")
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and len(json.loads(target.read_text())["losses"]) == 2


def test_ctrl_c_while_sampling_keeps_the_trained_run(tmp_path, names_path):
    out = tmp_path / "r.json"
    proc = start("2_numpy/main.py", "--data", str(names_path), "--out", str(out), "--steps", "3",
                 "--samples", "100000")
    wait_for(proc, "sample  2:")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "while sampling; the trained run is in" in one_line(stderr)
    res = json.loads(out.read_text())
    assert "partial" not in res and len(res["losses"]) == 3 and 2 <= len(res["samples"]) < 100000


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGHUP, 129, "stopped (the terminal hung up)")])
def test_a_stopped_rerun_never_replaces_a_complete_run(sig, code, word, tmp_path, names_path):
    """Ctrl-C, SIGTERM or SIGHUP (a closed terminal): the steps done go beside a complete
    results file, never over it."""
    out = tmp_path / "r.json"
    assert program("2_numpy/main.py", "--data", str(names_path), "--out", str(out), "--steps", "2").returncode == 0
    complete = out.read_bytes()
    proc = start("1_pure_python/main.py", "--data", str(names_path), "--out", str(out))
    wait_for(proc, "step    3 /")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert one_line(stderr).startswith(f"{word} after") and "r.partial.json" in stderr
    assert out.read_bytes() == complete
    partial = json.loads((tmp_path / "r.partial.json").read_text())
    assert partial["partial"] is True and len(partial["losses"]) >= 3 and round(partial["losses"][0], 4) == 3.3660


def test_a_closed_log_does_not_stop_the_run(tmp_path, names_path):
    """`main.py | head -2`: the reader goes away, the run goes on, and its results are kept."""
    out = tmp_path / "r.json"
    proc = start("2_numpy/main.py", "--data", str(names_path), "--out", str(out), "--steps", "300")
    wait_for(proc, "step    1 /")
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert "broken pipe" in one_line(stderr)
    assert len(json.loads(out.read_text())["losses"]) == 300


def test_the_profile_s_out_folder_is_checked_before_it_profiles(tmp_path):
    """profile_step.py --out DIR: a file, a missing folder, or a folder whose record is read-only
    is a usage line before the minutes of profiling, and nothing changes."""
    read_only = tmp_path / "kept"
    read_only.mkdir()
    (read_only / "profile_cpu.json").write_text("{}")
    (read_only / "profile_cpu.json").chmod(0o444)
    names = REPO_ROOT / "data" / "names.txt"
    for out, said in ((names, "is a file, not a folder"), (tmp_path / "missing", "does not exist"),
                      (read_only, "is read-only")):
        before = sorted(tmp_path.rglob("*")), names.read_bytes()
        proc = program("benchmarks/profile_step.py", "--out", str(out))
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert (sorted(tmp_path.rglob("*")), names.read_bytes()) == before


def test_the_harness_with_its_log_on_a_full_device_keeps_the_sitting(tmp_path):
    """benchmarks/run.py > /dev/full: the sitting goes on and is written; the last line, on
    stderr, says the log was lost and where the sitting is (was: a traceback, OSError 28)."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--stages", "2_numpy",
                               "--quick", "--out-dir", str(tmp_path)], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    written = list(tmp_path.glob("*-quick.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["runs"]
    assert one_line(proc.stderr) == (f"the log was lost: the device it goes to is full (no space left); the sitting "
                                     f"went on and is in {written[0]}")


def test_a_log_to_a_full_device_says_so(tmp_path, names_path):
    """`main.py > /dev/full`: the run goes on; the last line says the device is full, not that a pipe broke."""
    out = tmp_path / "r.json"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "2_numpy" / "main.py"), "--data", str(names_path),
                               "--out", str(out), "--steps", "5", "--samples", "0"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0
    line = one_line(proc.stderr)
    assert "no space left" in line and "broken pipe" not in line
    assert len(json.loads(out.read_text())["losses"]) == 5


def test_a_results_folder_gone_at_the_end_saves_the_run_elsewhere(tmp_path, names_path):
    folder = tmp_path / "results"
    folder.mkdir()
    proc = start("1_pure_python/main.py", "--data", str(names_path), "--out", str(folder / "r.json"),
                 "--steps", "8", "--samples", "0")
    wait_for(proc, "step    1 /")
    folder.rmdir()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    line = one_line(stderr)
    assert "cannot write the results" in line and "saved in" in line
    rescue = line.rsplit("saved in ", 1)[1].split(" instead")[0]
    assert len(json.loads(open(rescue).read())["losses"]) == 8
    os.unlink(rescue)


def test_a_second_ctrl_c_waits_for_the_file_being_written(tmp_path):
    """signals_held: a Ctrl-C that arrives while a results file is written takes effect once it
    is on disk, so the file is whole."""
    from shared import saving

    out = tmp_path / "r.json"
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, however pytest runs
    try:
        with pytest.raises(KeyboardInterrupt):
            with saving.signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                out.write_text(json.dumps({"losses": [1.0] * 1000}))
    finally:
        signal.signal(signal.SIGINT, before)
    assert len(json.loads(out.read_text())["losses"]) == 1000


def test_benchmark_harness_checks_its_folders_first(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    for flag in ("--out-dir", "--stage-files"):
        proc = program("benchmarks/run.py", "--stages", "2_numpy", flag, str(not_a_folder))
        assert proc.returncode == 2 and "is a file, not a folder" in one_line(proc.stderr)
        assert "2_numpy" not in proc.stdout  # refused before any run started, not after it


def test_benchmark_harness_keeps_finished_runs_on_ctrl_c(tmp_path, names_path):
    """Ctrl-C (to the whole process group, as a terminal sends it) while stage 1 trains: stage 2's
    finished run is kept, in one file beside where the sitting would have gone."""
    proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "benchmarks" / "run.py"), "--stages", "2_numpy",
                             "1_pure_python", "--steps", "100", "--out-dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "MICROGPT_DATA": str(names_path)},
                            start_new_session=True, **DEFAULT_SIGINT)
    seen = b""
    while b"1_pure_python: step" not in seen:  # the progress line of the second run (no newline)
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.stderr.read()
        seen += chunk
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "finished run(s) are in" in one_line(stderr.decode())
    (partial,) = tmp_path.glob("*.partial.json")
    runs = json.loads(partial.read_text())["runs"]
    assert list(runs) == ["2_numpy"] and len(runs["2_numpy"][0]["losses"]) == 100
    (stopped,) = tmp_path.glob("*.1-pure-python.failed-run.json")  # stage 1's steps, out of its temporary folder
    assert json.loads(stopped.read_text())["partial"] is True


# ---------------------------------------------------------------------------- failing fast


@pytest.mark.parametrize("script", [*(f"{stage}/main.py" for stage in STAGES), "4_triton/fused_step.py"])
def test_what_cannot_fit_is_refused_before_it_is_allocated(script, names_path, tmp_path):
    """The memory a run needs is estimated from its sizes and refused in one line, in seconds."""
    for argv in (["--batch-size", "1000000000"], ["--n-layer", "100000"], ["--n-embd", "65536"]):
        if script.endswith("fused_step.py") and argv[0] != "--batch-size":
            continue  # (it implements SPEC.md's one-layer width-16 model only, a usage error)
        started = time.perf_counter()
        proc = program(script, "--data", str(names_path), "--out", str(tmp_path / "r.json"), *argv,
                       "--steps", "10")
        assert proc.returncode in (1, 2), proc.stderr
        line = one_line(proc.stderr)
        assert "GiB" in line or "32-bit" in line or "Triton allows" in line, line
        assert time.perf_counter() - started < 60 and not (tmp_path / "r.json").exists()


def test_stage4_states_its_block_size_limit_up_front(names_path):
    proc = program("4_triton/main.py", "--data", str(names_path), "--block-size", "1024", "--steps", "1")
    assert proc.returncode == 2 and "1024 x 1024 x 4" in one_line(proc.stderr)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_compiled_kernels_without_a_gpu_is_one_line(names_path):
    proc = program("4_triton/main.py", "--data", str(names_path), "--steps", "1",
                   env={**os.environ, "TRITON_INTERPRET": "0"})
    assert proc.returncode == 1 and "no CUDA GPU" in one_line(proc.stderr)


@pytest.mark.parametrize("script", ["2_numpy/main.py", "3_pytorch/main.py", "4_triton/main.py"])
def test_a_python_without_the_packages_is_told_to_use_the_venv(script, names_path):
    """The system python3 instead of the venv's: one line naming the package and the fix."""
    code = ("import runpy, sys\nsys.modules['numpy'] = sys.modules['torch'] = None\n"
            f"sys.argv = [{str(REPO_ROOT / script)!r}, '--data', {str(names_path)!r}]\n"
            f"runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT / script.split("/")[0])
    assert proc.returncode == 1
    assert ".venv/bin/python" in one_line(proc.stderr)


@pytest.mark.parametrize("script", ["3_pytorch/main.py", "4_triton/main.py"])
def test_a_torch_that_cannot_load_is_one_line(script, names_path, tmp_path):
    """A broken installation: torch is there, but its import fails (a shared library missing)."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "raise OSError('libtorch_cpu.so: cannot open shared object file: No such file or directory')\n")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / script), "--data", str(names_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "cannot load torch" in line and "libtorch_cpu.so" in line and "--force-reinstall" in line


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_inductor_cache_folder_that_cannot_be_one_is_one_line(where, names_path, tmp_path):
    """TORCHINDUCTOR_CACHE_DIR naming a file (or a folder under one): torch makes that folder as it
    loads, so stage 3 fails before it starts; one line naming the variable and the fix."""
    (tmp_path / "file").write_text("x")
    cache = tmp_path / "file" if where == "a file" else tmp_path / "file" / "cache"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "3_pytorch" / "main.py"), "--data", str(names_path),
                           "--compile", "--device", "cpu", "--steps", "2", "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)})
    assert proc.returncode == 1 and "TORCHINDUCTOR_CACHE_DIR" in one_line(proc.stderr) and "unset it" in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_ctrl_c_while_a_library_cleans_up_prints_nothing_more():
    """Two quick Ctrl-C: the second arrives while the program exits, inside an exit handler (torch
    registers some): the run's one line, and no "Exception ignored in atexit callback"."""
    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n"
            "import atexit, os, signal, time\nfrom shared import cli\n"
            "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
            "def main():\n    raise KeyboardInterrupt\n"
            "sys.exit(cli.run(main))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, **DEFAULT_SIGINT)
    assert proc.returncode == 130 and one_line(proc.stderr) == "interrupted", proc.stderr


def test_ctrl_c_while_torch_loads_is_one_line(names_path):
    """Ctrl-C while `import torch` runs (it takes seconds): the program sends itself the signal
    the moment torch's import begins, so the test waits on no clock."""
    script = ("import os, runpy, signal, sys\n"
              "class CtrlC:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'torch':\n"
              "            os.kill(os.getpid(), signal.SIGINT)\n"
              "sys.meta_path.insert(0, CtrlC())\n"
              f"sys.argv = ['main.py', '--data', {str(names_path)!r}]\n"
              f"runpy.run_path({str(REPO_ROOT / '3_pytorch' / 'main.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=real_start(), **DEFAULT_SIGINT)  # (a fork would start with torch loaded)
    assert proc.returncode == 130 and one_line(proc.stderr) == "interrupted", proc.stderr


def report_check(folder):
    """`python -m report --check` on a folder of READMEs and results files of a test's own."""
    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\nfrom pathlib import Path\n"
            f"from report import readmes as report\nreport.REPO_ROOT = Path({str(folder)!r})\n"
            f"sys.exit(report.main(['--check']))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_report_check_with_a_cut_short_results_file_is_one_line(tmp_path):
    (tmp_path / "README.md").write_text("<!-- BEGIN table r.json -->\n<!-- END table -->\n")
    (tmp_path / "r.json").write_text('{"losses": [3.36')
    proc = report_check(tmp_path)
    assert proc.returncode == 1 and "is not complete JSON" in one_line(proc.stderr)
    (tmp_path / "r.json").unlink()
    proc = report_check(tmp_path)
    assert proc.returncode == 1 and "cannot read results file" in one_line(proc.stderr)


# ---------------------------------------------------------------------------- smaller


def test_results_files_follow_the_umask(tmp_path, names_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "2_numpy" / "main.py"), "--data", str(names_path),
                           "--out", str(out), "--steps", "1", "--samples", "0"], capture_output=True, text=True,
                          timeout=60, preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0 and stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_byte_order_mark_is_not_a_character(tmp_path):
    data = tmp_path / "bom.txt"
    data.write_bytes(b"\xef\xbb\xbfab\nba\n")
    out = tmp_path / "r.json"
    assert program("2_numpy/main.py", "--data", str(data), "--out", str(out), "--steps", "1").returncode == 0
    assert json.loads(out.read_text())["config"]["vocab_size"] == 3  # a, b and BOS


def test_a_short_run_says_what_it_averaged(tmp_path, names_path):
    proc = program("2_numpy/main.py", "--data", str(names_path), "--out", str(tmp_path / "r.json"), "--steps", "3")
    summary = proc.stdout.strip().splitlines()[-1]
    # (not "the last 100 steps" of a long run; a speed such as "2,100 names/s" may hold the digits)
    assert "over all 3 steps" in summary and "last 3 steps" in summary and "100 steps" not in summary


# ---------------------------------------------------------------------------- precision


def test_stage4_float64_follows_stage1_to_1e_12():
    """--dtype float64 runs in float64 everywhere, Adam's per-step scalars included: 5 steps of
    the per-op kernels and of the one-kernel step equal stage 1's committed run to 1e-12 (a
    float32 run is 1e-7 away from it from the first step on)."""
    stage1 = json.loads((REPO_ROOT / "1_pure_python" / "results.json").read_text())["losses"][:5]
    np.testing.assert_allclose(stage_losses("4_triton", 5, "--dtype", "float64"), stage1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stage_losses("4_triton", 5, "--dtype", "float64", program="fused_step.py"), stage1,
                               rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- around the chapters (issue 28)


def test_a_stage_that_fails_keeps_the_harness_s_finished_runs(tmp_path, names_path):
    """benchmarks/run.py: stage 2 finishes, stage 3 cannot start (no torch, here): stage 2's run is
    on disk, said in the last lines, and the harness exits 1."""
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    out = tmp_path / "out"
    proc = program("benchmarks/run.py", "--stages", "2_numpy", "3_pytorch", "--quick", "--out-dir", str(out),
                   env={**os.environ, "MICROGPT_DATA": str(names_path), "PYTHONPATH": str(fake)}, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "3_pytorch" in proc.stderr and "finished run(s) are in" in proc.stderr and "Traceback (most" not in \
        proc.stderr.split("failed:")[0]
    (partial,) = out.glob("*.partial.json")
    assert list(json.loads(partial.read_text())["runs"]) == ["2_numpy"]


def processes_marked(mark: str) -> list[int]:
    """The pids of the processes whose environment holds `mark` (a test's own)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return found


def harness_training_stage_1(tmp_path, names_path) -> tuple[subprocess.Popen, str]:
    """benchmarks/run.py on stage 1, returned once its progress line shows the stage training, with
    the mark its processes carry in their environment."""
    mark = f"microgpt-test-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "benchmarks" / "run.py"), "--stages",
                             "1_pure_python", "--steps", "100", "--out-dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "MICROGPT_DATA": str(names_path),
                                                         "MICROGPT_TEST_MARK": mark})
    seen = b""
    while b"1_pure_python: step" not in seen:
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.stderr.read()
        seen += chunk
    return proc, mark


def test_sigterm_to_the_harness_stops_its_run_too(tmp_path, names_path):
    """`kill` on benchmarks/run.py: the stage it started stops with it (no orphan trains on)."""
    proc, mark = harness_training_stage_1(tmp_path, names_path)
    proc.send_signal(signal.SIGTERM)  # to the harness alone, as `kill PID` does
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in one_line(stderr.decode())
    assert processes_marked(mark) == []


@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "failed-run.json"), (signal.SIGKILL, "SIGKILL")])
def test_a_stage_stopped_under_the_harness_is_said_and_kept(tmp_path, names_path, sig, said):
    """`kill` on the stage the harness runs: its partial steps are moved beside the sitting's record
    (they were in a temporary folder the harness deleted), and a SIGKILL is named (it said nothing)."""
    proc, mark = harness_training_stage_1(tmp_path, names_path)
    (stage,) = [pid for pid in processes_marked(mark) if pid != proc.pid]
    os.kill(stage, sig)
    _, stderr = proc.communicate(timeout=60)
    stderr = stderr.decode()
    assert proc.returncode == 1 and said in stderr and "Traceback" not in stderr, stderr
    if sig == signal.SIGTERM:
        (kept,) = tmp_path.glob("*.failed-run.json")
        assert str(kept) in stderr and json.loads(kept.read_text())["partial"] is True
    assert processes_marked(mark) == []


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_gpu_sitting_refused_for_want_of_a_gpu_leaves_no_folder(tmp_path):
    proc = program("benchmarks/gpu_sitting.py", "--out", str(tmp_path / "sitting"))
    assert proc.returncode == 2 and "needs a CUDA GPU" in one_line(proc.stderr)
    assert list(tmp_path.iterdir()) == []


def test_a_quick_run_writes_the_stage_files_it_is_asked_for(tmp_path, names_path):
    """--quick with --stage-files: the stage files are written where asked (they were silently left out)."""
    files = tmp_path / "stage-files"
    files.mkdir()
    proc = program("benchmarks/run.py", "--quick", "--stages", "2_numpy", "--stage-files", str(files),
                   "--out-dir", str(tmp_path / "out"), env={**os.environ, "MICROGPT_DATA": str(names_path)},
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    (written,) = files.iterdir()
    assert written.name == "2_numpy.results.json" and len(json.loads(written.read_text())["losses"]) == 20


def test_a_full_disk_at_the_end_of_a_sitting_keeps_it_elsewhere(tmp_path, names_path, monkeypatch, capsys):
    """The stages finish, then the sitting's record cannot be written (no space left): it goes to the
    system's temporary folder, as a stage's results do, and the last line says where."""
    import errno

    from benchmarks import run as harness
    from shared import saving

    written = saving.write_text_atomic

    def full(path, text):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(path, text)
    monkeypatch.setattr(saving, "write_text_atomic", full)
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        assert harness.main(["--stages", "2_numpy", "--steps", "3", "--out-dir", str(tmp_path)]) == 1
    finally:  # (the harness takes SIGTERM and SIGHUP for its own; this process is pytest's)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in line and "the sitting is in" in line
    rescued = Path(line.split("the sitting is in ")[1].split(";")[0])
    assert len(json.loads(rescued.read_text())["runs"]["2_numpy"][0]["losses"]) == 3
    rescued.unlink()


def test_a_second_gpu_sitting_never_replaces_the_first(tmp_path):
    """gpu_sitting.py into a folder that holds a sitting's record is refused in one line before
    anything runs; without --out a second sitting on the same day takes a new folder; an --out
    that is a file, or under one, is one line too."""
    (tmp_path / "gpu-sitting-cpu.json").write_text('{"parts": [1, 2, 3, 4, 5, 6], "complete": true}')
    kept = (tmp_path / "gpu-sitting-cpu.json").read_bytes()
    proc = program("benchmarks/gpu_sitting.py", "--rehearse", "--out", str(tmp_path))
    assert proc.returncode == 2 and "holds a sitting's record already" in one_line(proc.stderr)
    assert (tmp_path / "gpu-sitting-cpu.json").read_bytes() == kept and len(list(tmp_path.iterdir())) == 1
    a_file = tmp_path / "gpu-sitting-cpu.json"
    for out in (a_file, a_file / "below"):
        proc = program("benchmarks/gpu_sitting.py", "--rehearse", "--out", str(out))
        assert proc.returncode == 2 and "is a file, not a folder" in one_line(proc.stderr)
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import gpu_sitting

    today = gpu_sitting.output_folder(None, None)
    assert today.parent == REPO_ROOT / "benchmarks" / "results"
    original = gpu_sitting.REPO_ROOT
    try:
        gpu_sitting.REPO_ROOT = tmp_path
        first = gpu_sitting.output_folder(None, None)
        first.mkdir(parents=True)
        (first / "gpu-sitting-cpu.json").write_text("{}")
        assert gpu_sitting.output_folder(None, None) == first.with_name(first.name + "-2")
    finally:
        gpu_sitting.REPO_ROOT = original


def test_ctrl_c_in_a_sitting_is_one_line_and_keeps_the_record(tmp_path, names_path):
    proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "benchmarks" / "gpu_sitting.py"), "--rehearse",
                             "--out", str(tmp_path / "sit")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "MICROGPT_DATA": str(names_path)}, **DEFAULT_SIGINT)
    wait_for(proc, "== environment")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "the parts done so far are in" in one_line(stderr)
    record = json.loads((tmp_path / "sit" / "gpu-sitting-cpu.json").read_text())
    assert record["interrupted_in"] == "environment" and record["complete"] is False


def test_a_stopped_batch_sweep_never_replaces_a_complete_one(tmp_path):
    """gpu_batches.py into a file holding a complete sweep, stopped: the sweep is kept, the rows
    of the stopped one go beside it, one line says where."""
    from benchmarks.progress import Progress

    out = tmp_path / "sweep.json"
    out.write_text(json.dumps({"rows": [{"label": "kept"}], "complete": True}))
    kept = out.read_bytes()
    unit = tmp_path / "unit.json"
    unit.write_bytes(kept)
    progress = Progress(unit, "sweep")
    assert progress.write({"rows": []}, complete=False) == tmp_path / "unit.partial.json"
    assert unit.read_bytes() == kept
    assert progress.write({"rows": [1]}, complete=True) == unit and not (tmp_path / "unit.partial.json").exists()
    assert Progress(unit, "sweep").write({"rows": []}, complete=False) == tmp_path / "unit.partial.json"
    fresh = Progress(tmp_path / "new.json", "sweep")
    assert fresh.write({"rows": []}, complete=False) == tmp_path / "new.json"  # nothing to keep: written in place
    proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "benchmarks" / "gpu_batches.py"), "--rehearse",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **DEFAULT_SIGINT)
    wait_for(proc, "B=")  # the first row is measured and written
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "sweep.partial.json" in one_line(stderr)
    assert json.loads(out.read_bytes()) == json.loads(kept)
    assert json.loads((tmp_path / "sweep.partial.json").read_text())["complete"] is False


def malformed(kind: str) -> str:
    """A results file (stage 2's committed one) spoiled one way."""
    good = json.loads((REPO_ROOT / "2_numpy" / "results.json").read_text())
    return {"nan losses": json.dumps({**good, "losses": [float("nan")] * len(good["losses"])}),
            "no env": json.dumps({k: v for k, v in good.items() if k != "env"}),
            "strings": json.dumps({**good, "total_s": str(good["total_s"])}),
            "string losses": json.dumps({**good, "losses": [str(x) for x in good["losses"]]}),
            "deep": "[" * 100000 + "]" * 100000,
            "no steps": json.dumps({**good, "losses": [], "step_ms": []}),
            "a list": "[]"}[kind]


@pytest.mark.parametrize("kind, problem", [
    ("nan losses", "its losses hold nan"), ("no env", "it has no env"), ("strings", "its total_s is str"),
    ("string losses", "its losses hold '"), ("deep", "nested too deeply"), ("no steps", "it has no steps"),
    ("a list", "it holds list"),
])
def test_report_names_a_malformed_results_file_in_one_line(tmp_path, kind, problem):
    """python -m report --check on a results file that is wrong inside: one line that names the
    file and what is wrong, exit 1; never a traceback, never a silent pass, never "nan" in a README."""
    (tmp_path / "README.md").write_text("<!-- BEGIN figures r.json -->\n<!-- END figures -->\n")
    (tmp_path / "r.json").write_text(malformed(kind))
    proc = report_check(tmp_path)
    line = one_line(proc.stderr)
    assert proc.returncode == 1 and "r.json" in line and problem in line, line


def test_report_names_a_malformed_sweep_in_one_line(tmp_path):
    """A file other than a run's (a batch sweep) missing what its block reads: one line too."""
    (tmp_path / "README.md").write_text("<!-- BEGIN batches s.json#2_numpy -->\n<!-- END batches -->\n")
    (tmp_path / "s.json").write_text('{"rows": [{"stage": "2_numpy", "batch_size": 1}]}')
    proc = report_check(tmp_path)
    assert proc.returncode == 1 and "s.json is not what a `batches` block reads" in one_line(proc.stderr)


def test_names_with_old_mac_line_ends_are_names(tmp_path, names_path):
    """A names file with CR-only line ends trains on the same names as the usual one."""
    from shared import dataset

    cr = tmp_path / "cr.txt"
    cr.write_bytes(names_path.read_bytes().replace(b"\n", b"\r"))
    assert dataset.load_docs(cr) == dataset.load_docs(names_path)
    proc = program("2_numpy/main.py", "--data", str(cr), "--out", str(tmp_path / "r.json"), "--steps", "1")
    assert proc.returncode == 0 and "loss 3.3660" in proc.stdout


def test_names_from_a_pipe_are_read_once(tmp_path, names_path):
    """`--data <(cat names.txt)`: a pipe, read once (with the size cap), trains as the file does."""
    read, write = os.pipe()
    feeder = subprocess.Popen(["cat", str(names_path)], stdout=write)
    os.close(write)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "2_numpy" / "main.py"), "--data", f"/dev/fd/{read}",
                           "--out", str(tmp_path / "r.json"), "--steps", "1"], capture_output=True, text=True,
                          timeout=60, pass_fds=(read,))
    os.close(read)
    feeder.wait()
    assert proc.returncode == 0 and "loss 3.3660" in proc.stdout, proc.stderr


def test_a_long_block_size_is_sized_by_the_longest_name(tmp_path, names_path):
    """--block-size 100000 for stage 2: memory is counted for the longest name (15 letters), so
    the run starts rather than being refused as needing thousands of GiB."""
    proc = program("2_numpy/main.py", "--data", str(names_path), "--out", str(tmp_path / "r.json"),
                   "--block-size", "100000", "--steps", "1", "--samples", "0")
    assert proc.returncode == 0, proc.stderr


def test_sizes_past_what_a_machine_has_are_one_line(tmp_path, names_path):
    """--threads past any machine's cores; --steps 10**12 starts at once (nothing is built per
    step up front) and a stop keeps its steps; the one-kernel step at a block size whose tiles
    cannot fit is refused by the memory estimate, not by a MemoryError."""
    out = tmp_path / "r.json"
    proc = program("3_pytorch/main.py", "--data", str(names_path), "--out", str(out), "--threads", "99999999999")
    assert proc.returncode == 2 and "--threads must be at most" in one_line(proc.stderr)
    proc = start("2_numpy/main.py", "--data", str(names_path), "--out", str(out), "--steps", str(10**12))
    wait_for(proc, "step    2 /")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and len(json.loads(out.read_text())["losses"]) >= 2
    proc = program("4_triton/fused_step.py", "--data", str(names_path), "--out", str(out), "--block-size",
                   "131072", "--steps", "1")
    assert proc.returncode == 1 and "GiB" in one_line(proc.stderr)


def test_names_the_file_system_or_the_terminal_cannot_take(tmp_path, names_path):
    """A 305-character --out or --data: one line saying so; a 250-character --out: written there;
    stdout on a full device: the run is kept; an --out this terminal's encoding cannot show: escaped."""
    long = tmp_path / ("x" * 305)
    for flag in ("--out", "--data"):
        argv = ["--data", str(names_path), "--out", str(long)] if flag == "--out" else \
            ["--data", str(long), "--out", str(tmp_path / "r.json")]
        proc = program("2_numpy/main.py", *argv, "--steps", "1")
        assert proc.returncode == 1 and "File name too long" in one_line(proc.stderr)
    near_limit = tmp_path / ("y" * 245 + ".json")
    proc = program("2_numpy/main.py", "--data", str(names_path), "--out", str(near_limit), "--steps", "1")
    assert proc.returncode == 0 and near_limit.exists(), proc.stderr
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "2_numpy" / "main.py"), "--data", str(names_path),
                               "--out", str(tmp_path / "full.json"), "--steps", "2"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and (tmp_path / "full.json").exists()
    accented = tmp_path / "résultats.json"
    proc = program("2_numpy/main.py", "--data", str(names_path), "--out", str(accented), "--steps", "1",
                   env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and accented.exists(), proc.stderr


def test_under_nohup_a_hangup_is_still_ignored(tmp_path, names_path):
    """`nohup python main.py &`: SIGHUP was ignored when the program started, so it stays ignored
    and the run finishes."""
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "1_pure_python" / "main.py"), "--data",
                             str(names_path), "--out", str(out), "--steps", "4", "--samples", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for(proc, "step    1 /")
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "partial" not in json.loads(out.read_text()) and len(json.loads(out.read_text())["losses"]) == 4


def test_compile_without_a_cpp_compiler_is_one_line_before_training(tmp_path, names_path):
    """--compile on a CPU builds C++: with no compiler to be found, one line says what to install,
    before any step, as a usage error (chapter 3's own check of its flag), and no results file is
    written (not Inductor's traceback at the first step)."""
    out = tmp_path / "r.json"
    proc = program("3_pytorch/main.py", "--data", str(names_path), "--out", str(out), "--device", "cpu",
                   "--compile", "--steps", "2", env={**os.environ, "CXX": str(tmp_path / "no-such-g++")})
    assert proc.returncode == 2 and "needs a C++ compiler" in one_line(proc.stderr)
    assert "step" not in proc.stdout and not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", ["compiled_cpu", "distributed", "gc_stage1", "gpu_batches", "gpu_profile",
                                    "loss_meaning", "scaling"])
def test_a_benchmark_s_out_never_replaces_what_it_did_not_write(script, tmp_path):
    """--out naming the names file, a source file, or a read-only record: a usage error before
    anything is computed, and the file unchanged."""
    read_only = tmp_path / "kept.json"
    read_only.write_text("{}")
    read_only.chmod(0o444)
    for out, said in ((REPO_ROOT / "data" / "names.txt", "not a JSON record"),
                      (REPO_ROOT / "benchmarks" / f"{script}.py", "not a JSON record"), (read_only, "is read-only")):
        before = out.read_bytes()
        proc = program(f"benchmarks/{script}.py", "--out", str(out), timeout=120)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert out.read_bytes() == before
