"""The GPU record in one sitting: everything measured on a CUDA GPU, in at most 8 minutes.

    python benchmarks/gpu_sitting.py --plan        # the parts, their budgets, the estimate; runs nothing
    python benchmarks/gpu_sitting.py               # on an H100/H200: the sitting, into benchmarks/results/
    python benchmarks/gpu_sitting.py --rehearse --out DIR   # on a CPU: every part, tiny, interpreted

A GPU is lent for minutes at a time, so the sitting is one prepared script. Each part runs as
its own process with a time budget; a part that fails or runs out of time is recorded (its
status, its last lines) and the next one runs, after every process it started is stopped.
Progress goes to stdout, and `gpu-sitting-<device>.json` in the output folder (by default
benchmarks/results/gpu-<date>/) is rewritten after every part, so a sitting cut short keeps
what it measured. The files it makes are then checked and moved where the READMEs read them
(the stage files into the stage folders, the sweep and the profile beside the committed
ones), and `python -m report` regenerates the tables. The parts:

1. environment: the GPU, the driver, torch, Triton (nvidia-smi, versions).
2. tests: stage 4's tests on compiled kernels (TRITON_INTERPRET=0), with the count (the
   ahead-of-time compile test is left out: on a GPU every kernel compiles for real).
3. capture: `4_triton/main.py --batch-size 64` must capture its step as one CUDA graph.
4. reruns: benchmarks/run.py for stages 3 and 4 at B = 1, every committed GPU results file
   made again on today's code (loss 2.6497 at step 1000, microgpt's samples); the stage files
   land in `<out>/stage-files/`, to be copied into the stage folders once checked.
5. launches: benchmarks/gpu_profile.py, kernels per step of stage 3 and stage 4 counted with
   the CUDA profiler, and each of our kernels timed against its naive PyTorch version.
6. batches: benchmarks/gpu_batches.py, names per second against B for stage 3 eager and
   torch.compile, stage 4's per-op CUDA graph and the one-kernel step, and the profile of the
   best row (FLOP/s against the float32 peak, the share spent reducing gradients).

The budgets add up to the estimate `--plan` prints; the sitting stops a part at its budget.
"""

import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from shared import cli, saving  # noqa: E402
from shared.environment import environment  # noqa: E402

LIMIT_S = 8 * 60  # the whole sitting, on one H100/H200
MICROGPT_SAMPLES = ["kamon", "ann", "karai"]  # microgpt's first published samples (SPEC.md's run)


ENVIRONMENT = """
import platform, subprocess, numpy, torch, triton
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "triton", triton.__version__, "numpy", numpy.__version__)
if torch.cuda.is_available():
    print(torch.cuda.get_device_name())
    subprocess.run(["nvidia-smi", "-L"])
"""


REHEARSAL_CAP_S = 900  # a rehearsed part that hangs is stopped here


def parts(out: Path, rehearse: bool) -> list[dict]:
    """Each part: name, budget in seconds (what the estimate adds up), command, environment."""
    py = sys.executable
    interpret = {"TRITON_INTERPRET": "1" if rehearse else "0"}
    # (a rehearsal runs inside the test suite: not pytest again there, but one kernel file's own check)
    tests = [py, "4_triton/kernels/attention.py"] if rehearse else [
        py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_stage4.py", "tests/test_fused.py", "-k",
        "not compiles_for"]
    return [
        dict(name="environment", budget=15, env={},
             cmd=[py, "-c", ENVIRONMENT]),
        dict(name="tests", budget=100, env=interpret, cmd=tests),
        dict(name="capture", budget=35, env=interpret,
             cmd=[py, "4_triton/main.py", "--batch-size", "2" if rehearse else "64",
                  "--steps", "3" if rehearse else "50", "--samples", "0", "--out", str(out / "capture.json")]),
        dict(name="reruns", budget=110, env={},
             cmd=[py, "benchmarks/run.py", "--stages", "3_pytorch", "4_triton", "--out-dir", str(out),
                  "--stage-files", str(out / "stage-files"), *(["--quick"] if rehearse else [])]),
        dict(name="launches", budget=30, env={},
             cmd=[py, "benchmarks/gpu_profile.py", "--out", str(out / "gpu_profile.json"),
                  *(["--rehearse"] if rehearse else [])]),
        dict(name="batches", budget=190, env={},
             cmd=[py, "benchmarks/gpu_batches.py", "--out", str(out / "gpu-batches.json"), "--timeout", "60",
                  *(["--rehearse"] if rehearse else [])]),
    ]


def check(name: str, out: Path, output: str, rehearse: bool) -> dict:
    """What a finished part proves, read from its files and output."""
    if name == "tests" and rehearse:
        return {"ok": "matches PyTorch" in output}
    if name == "tests":
        counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error|skipped)", output)}
        return {"counts": counts, "ok": counts.get("passed", 0) > 0 and not counts.get("failed")}
    if name == "capture":
        env = json.loads((out / "capture.json").read_text())["env"]
        return {"cuda_graph": env.get("cuda_graph"), "kernels_per_step": env.get("kernels_per_step"),
                "ok": rehearse or env.get("cuda_graph") is True}
    if name == "reruns" and not rehearse:
        files = sorted((out / "stage-files").glob("*.json"))
        runs = {f.name: json.loads(f.read_text()) for f in files}
        ok = bool(runs) and all(round(r["losses"][-1], 4) == 2.6497 and r["samples"][:3] == MICROGPT_SAMPLES
                                for r in runs.values())
        return {"files": list(runs), "ok": ok}
    if name == "launches":
        report = json.loads((out / "gpu_profile.json").read_text())
        return {"per_step": {k: report[k]["per_step"] for k in ("stage3_eager", "stage4_per_kernel")},
                "ok": report["stage4_per_kernel"]["per_step"] > 0}
    if name == "batches":
        report = json.loads((out / "gpu-batches.json").read_text())
        failed = [f"{r['label']} B={r['batch_size']}" for r in report["rows"] if "error" in r]
        return {"rows": len(report["rows"]), "failed_rows": failed, "complete": report.get("complete"),
                "ok": bool(report.get("complete"))}
    return {"ok": True}


def main(argv=None) -> int:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true", help="print the parts and the estimate; run nothing")
    parser.add_argument("--rehearse", action="store_true", help="on a CPU: every part, tiny, through the interpreter")
    parser.add_argument("--out", default=None, help="folder for everything (default benchmarks/results/gpu-<date>)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args.out)
    plan = parts(out, args.rehearse)
    estimate = sum(p["budget"] for p in plan)
    print(f"sitting: {len(plan)} parts, estimated {estimate / 60:.1f} minutes at most (limit {LIMIT_S / 60:.0f}):")
    for p in plan:
        print(f"  {p['name']:12s} at most {p['budget']:4d} s")
    assert estimate <= LIMIT_S, "the parts' budgets exceed the sitting's limit"
    if args.plan:
        return 0
    if not args.rehearse:  # before its folder is made: a refused sitting leaves nothing behind
        import torch

        if not torch.cuda.is_available():
            parser.error("the sitting needs a CUDA GPU; --rehearse runs it on a CPU")
    try:
        (out / "stage-files").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {out} cannot be made ({err.strerror}); give another folder")
    cli.stop_on_signals()
    try:
        return sit(parser, args, out, plan, estimate)
    except KeyboardInterrupt as stop:
        kept = f"the parts done so far are in {out}" if any(out.glob("gpu-sitting-*.json")) else "no part had started"
        cli.say_last(f"{getattr(stop, 'word', 'interrupted')}: {kept}")
        return getattr(stop, "status", 130)


def output_folder(parser, given: str | None) -> Path:
    """The sitting's folder, absolute (the parts run from the repository's root). A folder that
    already holds a sitting's record is never written into again: without --out the sitting
    takes the next free name (gpu-<date>-2, ...); a given --out that holds one is refused."""
    default = REPO_ROOT / "benchmarks" / "results" / f"gpu-{datetime.date.today().isoformat()}"
    out = Path(given).resolve() if given else default
    for above in (out, *out.parents):
        if above.exists() and not above.is_dir():
            parser.error(f"--out {given}: {above} is a file, not a folder; give a folder")
    holds_record = lambda folder: folder.is_dir() and any(folder.glob("gpu-sitting-*.json"))
    if given and holds_record(out):
        parser.error(f"--out {given} holds a sitting's record already; give a new folder, so it is kept")
    n = 1
    while holds_record(out):
        n += 1
        out = default.with_name(f"{default.name}-{n}")
    return out


def sit(parser, args, out: Path, plan: list[dict], estimate: int) -> int:
    import torch

    if not args.rehearse and not torch.cuda.is_available():
        parser.error("the sitting needs a CUDA GPU; --rehearse runs it on a CPU")
    device = "cpu" if args.rehearse else torch.cuda.get_device_name()
    record = {"device": device, "rehearsal": args.rehearse, "parts": [], "estimate_s": estimate, "complete": False,
              "env": environment(device)}
    path = out / f"gpu-sitting-{re.sub(r'[^a-z0-9]+', '-', device.lower()).strip('-')}.json"
    started = time.perf_counter()
    running = {"part": None, "proc": None}
    try:
        for p in plan:
            entry = run_part(p, out, args.rehearse, running)
            record["parts"].append(entry)
            record["sitting_s"] = time.perf_counter() - started
            record["complete"] = len(record["parts"]) == len(plan)
            save(path, record)
            print(f"== {p['name']}: {entry['status']}, {'ok' if entry['ok'] else 'NOT OK'}, {entry['seconds']:.0f} s",
                  flush=True)
    except KeyboardInterrupt:  # the sitting is stopped: so is the running part, with everything it started
        if running["proc"] is not None:
            with contextlib.suppress(ProcessLookupError):  # (it may have ended just before)
                os.killpg(running["proc"].pid, signal.SIGKILL)
            running["proc"].wait()
        record["interrupted_in"] = running["part"]
        save(path, record)
        raise
    failed = [e["name"] for e in record["parts"] if not e["ok"]]
    print(f"sitting done in {record['sitting_s']:.0f} s -> {path}"
          + (f"; not ok: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_part(p: dict, out: Path, rehearse: bool, running: dict) -> dict:
    """One part in its own process group, so a part out of time (or a sitting stopped) is stopped
    with every process it started; its record entry: status, time, last lines, and its check."""
    running.update(part=p["name"], proc=None)  # (before the line that says it started)
    print(f"== {p['name']} (budget {p['budget']} s)", flush=True)
    t0 = time.perf_counter()
    running["proc"] = proc = subprocess.Popen(p["cmd"], cwd=REPO_ROOT, env={**os.environ, **p["env"]},
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # (a rehearsal has no budget: on a busy CPU it may take longer, and it proves no timing)
        output = proc.communicate(timeout=REHEARSAL_CAP_S if rehearse else p["budget"])[0]
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, status = proc.communicate()[0], "out of time"
    output = output.decode(errors="replace")
    print(output[-3000:], flush=True)
    entry = {"name": p["name"], "status": status, "seconds": time.perf_counter() - t0, "budget": p["budget"],
             "command": " ".join(p["cmd"][1:]), "tail": output[-2000:]}
    try:
        entry.update(check(p["name"], out, output, rehearse))
    except (OSError, ValueError, KeyError) as err:
        entry.update(ok=False, check_error=f"{type(err).__name__}: {err}")
    entry["ok"] = entry["ok"] and status == "ok"
    return entry


def save(path: Path, record: dict) -> None:
    """The record, after every part; a full disk sends it to the temporary folder, said so."""
    where, err = saving.write_or_rescue(path, record, "gpu-sitting")
    if err is not None:
        print(f"could not write {path} ({err.strerror}); the record is in {where}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
