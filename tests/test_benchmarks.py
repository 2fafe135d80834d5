"""The benchmark harness and the scaling sweep, in their smoke modes: real runs of the real
main.py files, checked for the numbers they must carry."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, load_stage


def test_quick_benchmark_records_every_stage_with_speedups(tmp_path, names_path, monkeypatch):
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick", "--stages",
                           "2_numpy", "3_pytorch", "--repeats", "2", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (path,) = tmp_path.glob("*-quick.json")
    report = json.loads(path.read_text())
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == {"2_numpy", "3_pytorch"}
    assert all(len(row["median_step_ms_each_repeat"]) == 2 for row in rows.values())
    two, three = rows["2_numpy"], rows["3_pytorch"]
    basis = "median_cpu_ms" if three["speedups_on"] == "cpu time" else "median_step_ms"  # a busy machine: CPU time
    assert three["speedup_previous"] == pytest.approx(two[basis] / three[basis])
    assert three["median_cpu_ms"] > 0 and report["env"]["load_averages"]
    assert two["final_loss"] == pytest.approx(three["final_loss"], abs=1e-4)  # the same 20 steps
    assert report["env"]["threads_pinned"] == 1 and report["env"]["cpu"]
    table = path.with_suffix(".md").read_text()
    assert "| 3_pytorch |" in table and "Load average" in table


def test_a_busy_machine_compares_cpu_time():
    """Above 0.75 x the cores of load besides its own run, speed-ups are taken on each process's CPU
    time per step, for the whole chain or not at all."""
    from benchmarks import run

    cores = os.cpu_count() or 1
    assert run.busy([0.1, 1 + 0.8 * cores]) and not run.busy([0.1, 1 + 0.5 * cores])  # (1: the sitting's own run)
    step = lambda wall, cpu: {"stage": "s", "num_params": 1, "losses": [3.0] * 3, "step_ms": [wall] * 3,
                              "cpu_ms": [cpu] * 3, "total_s": 1.0, "config": {}, "env": {"device": "cpu"}}
    plan = [dict(label="a", stage="2_numpy", chain="cpu"), dict(label="b", stage="3_pytorch", chain="cpu")]
    busy = run.summarize_runs(plan, [[step(10.0, 2.0)], [step(40.0, 4.0)]], on_cpu_time=True)
    quiet = run.summarize_runs(plan, [[step(10.0, 2.0)], [step(40.0, 4.0)]], on_cpu_time=False)
    assert busy[1]["speedup_previous"] == 0.5 and quiet[1]["speedup_previous"] == 0.25
    assert busy[1]["speedups_on"] == "cpu time" and quiet[1]["speedups_on"] == "wall time"


def test_scaling_sweep_grows_with_width(tmp_path, names_path, monkeypatch):
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    out = tmp_path / "sweep.json"
    subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "scaling.py"), "--stages", "2_numpy",
                    "--widths", "16", "128", "--steps", "15", "--out", str(out)], check=True, timeout=300,
                   capture_output=True)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["n_embd"], r["num_params"]) for r in rows] == [(16, 4192), (128, 205568)]
    assert rows[1]["median_step_ms"] > rows[0]["median_step_ms"]  # 49x the parameters cost more time


def test_every_planned_run_calls_a_script_that_takes_its_flags(tmp_path, capsys):
    """The GPU plan never runs in CI: each planned run's script (every CPU run, and every GPU
    variant) is loaded, and its own command line takes the run's flags."""
    from benchmarks import run
    from shared import cli

    for planned in run.plan(list(run.STAGES), 20, gpu=True):
        script = planned.get("script", "main.py")
        program = load_stage(planned["stage"]) if script == "main.py" else importlib.import_module(Path(script).stem)
        assert Path(program.__file__) == REPO_ROOT / planned["stage"] / script
        try:
            cli.parse(program.FLAGS, REPO_ROOT / planned["stage"], planned["label"],
                      [*planned["args"], "--steps", "1", "--out", str(tmp_path / "r.json")])
        except SystemExit:
            pytest.fail(f"{planned['label']}: {capsys.readouterr().err}")


def test_batch_sweep_records_names_per_second(tmp_path, names_path, monkeypatch):
    """The batch sweep in its smoke mode: one row per batch size, stage 1 capped, throughput as defined."""
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    out = tmp_path / "batch.json"
    subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "scaling.py"), "--stages", "1_pure_python",
                    "2_numpy", "--widths", "16", "--batch-sizes", "1", "3", "--max-batch", "1_pure_python=1",
                    "--steps", "12", "--out", str(out)], check=True, timeout=300, capture_output=True)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["stage"], r["batch_size"]) for r in rows] == [("1_pure_python", 1), ("2_numpy", 1), ("2_numpy", 3)]
    for row in rows:
        assert row["names_per_s"] == pytest.approx(row["batch_size"] * 1000 / row["median_step_ms"])
        assert row["tokens_per_s"] > row["names_per_s"]  # a name has at least one target position


def test_the_gpu_sittings_plan_fits_its_eight_minutes():
    """benchmarks/gpu_sitting.py --plan adds up its parts' budgets and refuses a plan over the limit."""
    plan = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_sitting.py"), "--plan"],
                          capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0 and "estimated" in plan.stdout


@pytest.mark.ci_step  # not in the default suite: .ci/run runs it as its own step, `python -m pytest -m ci_step`
def test_the_gpu_sitting_rehearses_end_to_end_on_the_cpu(tmp_path, names_path, monkeypatch):
    """benchmarks/gpu_sitting.py --rehearse: every part of the GPU sitting -- a kernel's check (on
    the GPU, stage 4's tests; here not pytest within pytest), the capture check, the reruns, the
    batch sweep with its tuning and profile -- in a tiny form through the interpreter, with no
    time budget, so the script a GPU session runs cannot rot."""
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_sitting.py"), "--rehearse",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    (record_path,) = tmp_path.glob("gpu-sitting-*.json")
    record = json.loads(record_path.read_text())
    parts = {part["name"]: part for part in record["parts"]}
    assert list(parts) == ["environment", "tests", "capture", "reruns", "launches", "batches"]
    assert all(part["ok"] for part in parts.values()), {n: p["tail"][-500:] for n, p in parts.items() if not p["ok"]}
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "matches PyTorch" in parts["tests"]["tail"]
    batches = json.loads((tmp_path / "gpu-batches.json").read_text())
    labels = {(row["label"], row["batch_size"]) for row in batches["rows"]}
    assert {("3_pytorch eager", 2), ("3_pytorch torch.compile", 2), ("4_triton per-op, CUDA graph", 2),
            ("4_triton one kernel", 2)} <= labels
    assert batches["profile"]["total_kernel_us_per_step"] > 0 and batches["rehearsal"] is True


def test_the_loss_meaning_table_is_what_its_script_measures():
    """Chapter 1's table of what a loss means is benchmarks/loss_meaning.py's output: run again
    here (float64, deterministic), every loss equals the committed file's."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import loss_meaning

    committed = sorted((REPO_ROOT / "benchmarks" / "results").glob("loss-meaning-*.json"))[-1]
    recorded = json.loads(committed.read_text())
    measured = loss_meaning.measure()
    for key, value in measured.items():
        assert value == pytest.approx(recorded[key], rel=1e-9), key
    assert measured["initial_mean_loss"] > measured["ln_vocab"]  # what chapter 1 explains
    assert measured["trained_mean_loss"] < measured["bigram_loss"] < measured["unigram_loss"] < measured["ln_vocab"]


def newest_compiled_report() -> tuple[str, dict]:
    path = sorted((REPO_ROOT / "benchmarks" / "results").glob("compiled-cpu-*.json"))[-1]
    return str(path.relative_to(REPO_ROOT)), json.loads(path.read_text())


def test_the_compiled_benchmark_is_one_sitting_of_every_batch_and_thread_count():
    """benchmarks/compiled_cpu.py's committed report: eager and compiled at B = 1..1024 on one
    thread and on every core, each figure the fastest of its runs' medians; the compiled losses
    equal eager's to float32 rounding over 20 steps; every compile under a minute; chapter 3
    quotes this file, and its kernel file is the one this sitting generated."""
    from benchmarks.compiled_cpu import BATCHES, summarize

    path, report = newest_compiled_report()
    assert [s["threads"] for s in report["sweeps"]] == sorted({1, report["env"]["cpu_count"]})
    for sweep in report["sweeps"]:
        assert [row["batch_size"] for row in sweep["rows"]] == list(BATCHES)
        assert summarize({"rows": sweep["runs"]}) == sweep["rows"]  # the table is its runs, summarized
        for row in sweep["rows"]:
            assert len(row["compile_s"]) == report["repeats"] and 0 < max(row["compile_s"]) < 60
            assert row["loss_max_diff"] < 1e-5
        assert {len(r["losses"]) for r in sweep["runs"]} == {20}
    assert report["floor"]["flops_per_padded_name"] > report["floor"]["flops_per_name"] > 1e5
    readme = (REPO_ROOT / "3_pytorch" / "README.md").read_text()
    assert f"<!-- BEGIN compiled {path} -->" in readme and f"<!-- BEGIN compiledprofile {path} -->" in readme
    kernel = (REPO_ROOT / "3_pytorch" / "compiled_kernel.cpp").read_text()
    assert kernel.endswith(report["generated"]["shown_source"])
    for word in ("Vectorized<float>::loadu", "clamp_min", "blendv"):  # what the chapter says the loop does
        assert word in kernel


def test_the_compiled_benchmark_summarizes_and_reads_generated_code(tmp_path):
    """summarize() takes each mode's fastest median and the largest loss difference; generated_code()
    counts the kernels a C++ file defines and the library calls it makes, and copies one out."""
    from benchmarks.compiled_cpu import generated_code, summarize

    runs = [{"batch_size": 4, "compiled": c, "repeat": r, "median_step_ms": ms, "compile_s": 9.0 if c else None,
             "losses": [3.0, 2.5 + d]} for c, r, ms, d in
            [(False, 0, 2.0, 0), (True, 0, 0.5, 1e-6), (False, 1, 1.6, 0), (True, 1, 0.8, 3e-6)]]
    (row,) = summarize({"rows": runs})
    assert row["eager_us_per_name"] == pytest.approx(400) and row["compiled_us_per_name"] == pytest.approx(125)
    assert row["speedup"] == pytest.approx(3.2) and row["loss_max_diff"] == pytest.approx(3e-6)
    source = ('extern "C"  void  cpp_fused_relu_threshold_backward_1(const float* in_ptr0);\n'
              'extern "C"  void  cpp_fused_add_0(const float* in_ptr0);\n'
              'void call() { aoti_torch_cpu_mm_out(a); aoti_torch_cpu_mm_out(b); aoti_torch_cpu_bmm_out(c); }\n'
              'extern "C"  void  cpp_fused_relu_threshold_backward_1(const float* in_ptr0)\n{\n    body;\n}\n')
    (tmp_path / "k.cpp").write_text(source)
    code = generated_code(tmp_path)
    assert code["kernels"] == 2 and code["library_calls"] == {"mm": 2, "bmm": 1}
    assert code["shown_source"] == 'extern "C"  void  cpp_fused_relu_threshold_backward_1(const float* in_ptr0)\n{\n' \
                                   '    body;\n}\n'
