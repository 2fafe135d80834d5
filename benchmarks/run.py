"""Run every stage on the same work and record the numbers side by side.

    python benchmarks/run.py                  # all stages, 1000 steps each (stage 1: ~7 minutes)
    python benchmarks/run.py --quick          # a smoke run: 20 steps each
    python benchmarks/run.py --stages 2_numpy 3_pytorch --repeats 3

Each stage runs as a reader runs it -- its own main.py, in a fresh process -- with every
thread pool pinned to one thread (OMP, MKL, OpenBLAS and torch), so no stage borrows the
second core. With --repeats N the stages run N times, interleaved (1, 2, 3, 4, 1, 2, ...),
and each stage's figure is the median of its N medians: on a shared machine that drifts,
interleaving spreads the drift over every stage alike.

Without a CUDA GPU, stage 4 runs through Triton's interpreter for a short run, labelled as
such and kept out of the speed-up columns (the interpreter's speed says nothing about the
kernels). With one, stage 3 also runs on the GPU and stage 4 runs compiled, and the GPU
rows get their own speed-up column against stage 3 on the same GPU.

Writes benchmarks/results/<machine>-<date>.json (every run's full results) and a markdown
table beside it; report/benchmark_plots.py draws the figures from that file. --quick writes to
benchmarks/results/quick/ instead, which git ignores.
"""

import contextlib
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from report.readmes import benchmark_markdown  # noqa: E402
from shared import cli, log, results, saving, schema  # noqa: E402
from shared.cli import Parser  # noqa: E402
from shared.environment import environment  # noqa: E402
from shared.errors import HungUp  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
QUICK_DIR = RESULTS_DIR / "quick"  # smoke runs: ignored by git, read by no test
STAGES = {
    "1_pure_python": "scalar Value autograd, pure Python",
    "2_numpy": "NumPy Tensor autograd",
    "3_pytorch": "PyTorch (torch.autograd, nn.Module, torch.optim)",
    "4_triton": "our Triton kernels",
}
INTERPRETER_STEPS = 20
# where each run's results file belongs in the stage folders (see --stage-files)
STAGE_FILES = {
    "1_pure_python": "1_pure_python.results.json",
    "2_numpy": "2_numpy.results.json",
    "3_pytorch": "3_pytorch.results.json",
    "3_pytorch (cuda)": "3_pytorch.results_gpu.json",
    "4_triton (cuda graph)": "4_triton.results_gpu.json",
    "4_triton (no graph)": "4_triton.results_gpu_no_graph.json",
    "4_triton (one kernel per step)": "4_triton.results_fused_gpu.json",
    "4_triton (whole run, one launch)": "4_triton.results_fused_run_gpu.json",
}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def plan(stages: list[str], steps: int, gpu: bool) -> list[dict]:
    """The runs to make: label, stage, its script (main.py unless named), flags, steps, and
    which speed-up chain it enters."""
    runs = []
    for stage in stages:
        if stage == "3_pytorch":
            runs.append(dict(label="3_pytorch", stage=stage, args=["--device", "cpu", "--threads", "1"],
                             steps=steps, chain="cpu"))
            if gpu:
                runs.append(dict(label="3_pytorch (cuda)", stage=stage, args=["--device", "cuda"],
                                 steps=steps, chain="gpu"))
        elif stage == "4_triton":
            if gpu:
                runs.append(dict(label="4_triton (cuda graph)", stage=stage, args=[], steps=steps, chain="gpu"))
                runs.append(dict(label="4_triton (no graph)", stage=stage, args=["--no-cuda-graph"], steps=steps,
                                 chain="gpu"))
                runs.append(dict(label="4_triton (one kernel per step)", stage=stage, script="fused_step.py",
                                 args=["--launch", "step"], steps=steps, chain="gpu"))
                runs.append(dict(label="4_triton (whole run, one launch)", stage=stage, script="fused_step.py",
                                 args=["--launch", "run"], steps=steps, chain="gpu"))
            else:
                runs.append(dict(label="4_triton (interpreter)", stage=stage, args=[],
                                 steps=min(steps, INTERPRETER_STEPS), chain=None))
        else:
            runs.append(dict(label=stage, stage=stage, args=[], steps=steps, chain="cpu"))
    return runs


def run_once(run: dict, progress: str, keep_partial) -> dict:
    """One run of one stage's main.py; shows its progress on one line; returns its results.
    A run that fails after some steps leaves its partial results in the run's temporary folder:
    `keep_partial(path, label)` moves them beside the sitting's record before that folder goes."""
    env = {**os.environ, **ONE_THREAD}
    if run["chain"] is None:
        env["TRITON_INTERPRET"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        script = REPO_ROOT / run["stage"] / run.get("script", "main.py")
        cmd = [sys.executable, "-u", str(script), "--steps", str(run["steps"]),
               "--out", str(out), *run["args"]]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            with stopped_with_us(proc):
                tail = follow(proc, run, progress, started)
        except KeyboardInterrupt:  # the run was stopped with us and wrote its steps: out of the folder before it goes
            for written in (saving.beside(out), out):
                if written.exists():
                    keep_partial(written, run["label"])
            raise
        status = proc.wait()
        if status != 0:
            said = "".join(tail).rstrip()
            for written in (saving.beside(out), out):  # a stopped run's steps (SPEC.md: where a partial goes)
                if written.exists():
                    said = said.replace(str(written), str(keep_partial(written, run["label"])))
            raise RunFailed(f"{run['label']} failed: {why_it_ended(status, said)}")
        log.say()
        return schema.load_results(out)


def why_it_ended(status: int, said: str) -> str:
    """What a stage's non-zero exit means, in words: its own last lines, or, where it said nothing
    (killed at once), the signal that ended it."""
    if status < 0:
        name = signal.Signals(-status).name
        cause = {"SIGKILL": "killed (SIGKILL: out of memory, or another process killed it)",
                 "SIGSEGV": "crashed (SIGSEGV)"}.get(name, f"ended by {name}")
        return f"it was {cause}" + (f"; its last output:\n{said}" if said else ", before it could say anything")
    return f"it exited with status {status}" + (f":\n{said}" if said else ", saying nothing")


class RunFailed(Exception):
    """A stage's run ended with an error: the harness stops, keeping the runs that finished."""


def new_stem(out_dir: Path, stem: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... if a record of that name (complete or partial) is already
    in `out_dir`: a second sitting on the same day makes a new record, never replaces one."""
    taken = lambda name: any((out_dir / f"{name}{end}").exists() for end in (".json", ".partial.json", ".md"))
    n, name = 1, stem
    while taken(name):
        n += 1
        name = f"{stem}-{n}"
    return name


@contextlib.contextmanager
def stopped_with_us(proc, grace_s: float = 10.0):
    """If the harness stops (Ctrl-C), the run it started stops too, rather than train on unseen.
    A Ctrl-C typed at the terminal reaches the run as well, which is then writing its steps: it
    gets `grace_s` to finish that, since a second signal before its write began would lose them.
    A closed terminal's SIGHUP reaches both alike. Where the run is still going after that (only
    the harness was sent SIGINT), or where the harness stopped for any other reason (`kill` sends
    SIGTERM to it alone), the run is sent SIGTERM,
    which a stage takes as it takes Ctrl-C: it writes its steps and stops."""
    try:
        yield
    except BaseException as err:
        if type(err) in (KeyboardInterrupt, HungUp):  # what a terminal sends to every process it runs
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        raise


def follow(proc, run: dict, progress: str, started: float) -> list[str]:
    """Show the run's progress on one line; return the last lines of its output."""
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-20:]
        match = re.match(r"step\s+(\d+) /\s*(\d+)", line)
        if match and (int(match.group(1)) % max(1, int(match.group(2)) // 20) == 0):
            done, total = int(match.group(1)), int(match.group(2))
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (total - done)
            log.say(f"\r{progress} {run['label']}: step {done}/{total}, eta {eta:5.0f} s ", end="")
    return tail


def machine_name(env: dict) -> str:
    cpu = re.sub(r"[^a-z0-9]+", "-", env["cpu"].lower()).strip("-")
    return f"{cpu}-{env['cpu_count']}core" + ("-" + re.sub(r"[^a-z0-9]+", "-", env["device"].lower()).strip("-")
                                            if env["device"] != "cpu" else "")


BUSY = 0.75  # a load average above this share of the cores: other processes were running beside the sitting


def busy(load_averages: list[float]) -> bool:
    """Whether the machine was busy during the sitting: then a step's wall time also counts its waits
    behind other processes, and the speed-ups are taken on each process's CPU time instead. The
    sitting's own run (one process, one thread) is part of every load average and is not counted."""
    return max(load_averages, default=0.0) - 1 > BUSY * (os.cpu_count() or 1)


def summarize_runs(plan_rows: list[dict], repeats: list[list[dict]], on_cpu_time: bool = False) -> list[dict]:
    """One row per planned run: the median over repeats, and its speed-ups. CPU rows form the
    chain 1 -> 2 -> 3 (over the previous stage, and cumulative over stage 1); each GPU row is
    compared with stage 3 on the same GPU, the first GPU row. `on_cpu_time`: the speed-ups of the
    CPU rows from the median CPU time per step (a busy machine), not the wall time."""
    rows, cpu_previous, cpu_first, gpu_base = [], None, None, None
    # one clock for the whole chain: CPU time only where every CPU run recorded it
    on_cpu_time = on_cpu_time and all(t.get("cpu_ms") for run, tries in zip(plan_rows, repeats)
                                      if run["chain"] == "cpu" for t in tries)
    for run, tries in zip(plan_rows, repeats):
        summaries = [results.summarize(t) for t in tries]
        ms = statistics.median(s["median_step_ms"] for s in summaries)
        cpu_ms = (statistics.median(s["median_cpu_ms"] for s in summaries)
                  if all(s["median_cpu_ms"] for s in summaries) else None)
        compared = cpu_ms if on_cpu_time and run["chain"] == "cpu" else ms
        row = {
            "label": run["label"], "stage": run["stage"], "machinery": STAGES[run["stage"]],
            "device": summaries[0]["device"], "interpreter": summaries[0]["interpreter"],
            "num_params": summaries[0]["num_params"], "steps": summaries[0]["steps"],
            "median_step_ms": ms, "median_step_ms_each_repeat": [s["median_step_ms"] for s in summaries],
            "median_cpu_ms": cpu_ms,
            "speedups_on": "cpu time" if on_cpu_time and run["chain"] == "cpu" else "wall time",
            "total_s": statistics.median(s["total_s"] for s in summaries),
            "final_loss": summaries[0]["final_loss"], "chain": run["chain"],
            "speedup_previous": None, "speedup_cumulative": None,
        }
        if run["chain"] == "cpu":
            if cpu_previous is not None:
                row["speedup_previous"] = cpu_previous / compared
                row["speedup_cumulative"] = cpu_first / compared
            cpu_previous, cpu_first = compared, cpu_first or compared
        elif run["chain"] == "gpu":
            if gpu_base is None:
                gpu_base = ms
            else:
                row["speedup_previous"] = gpu_base / ms
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])  # a usage mistake is one line
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats; medians of medians")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 steps, one repeat")
    parser.add_argument("--out-dir", default=None,
                        help=f"where to write (default {RESULTS_DIR.relative_to(REPO_ROOT)}, or its quick/ "
                             f"folder for --quick, which git ignores)")
    parser.add_argument("--stage-files", metavar="DIR", default=None,
                        help="also write each run's results file into DIR, named <stage>.<file> (see STAGE_FILES)")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.repeats <= 0:
        parser.error("--steps and --repeats must be positive")
    steps = 20 if args.quick else args.steps
    out_dir = Path(args.out_dir or (QUICK_DIR if args.quick else RESULTS_DIR))
    for folder, flag in ((out_dir, "--out-dir"), (args.stage_files and Path(args.stage_files), "--stage-files")):
        if folder:  # checked before any run, not after all of them
            check_folder(parser, folder, flag, create=flag == "--out-dir")
    gpu = cuda_available()
    runs = plan(args.stages, steps, gpu)
    log.say(f"{len(runs)} runs x {args.repeats} repeat(s), {steps} steps each, every thread pool pinned to 1 thread"
            + (", GPU rows on CUDA" if gpu else ", stage 4 through the interpreter (short, labelled)"))
    env = environment("cuda" if gpu else "cpu", threads_pinned=1)
    today = datetime.date.today().isoformat()
    stem = new_stem(out_dir, f"{machine_name(env)}-{today}" + ("-quick" if args.quick else ""))
    repeats = [[] for _ in runs]
    partial = out_dir / f"{stem}.partial.json"

    def keep_finished() -> Path:  # after every run: the finished ones are on disk before the next starts
        done = {run["label"]: tries for run, tries in zip(runs, repeats) if tries}
        where, err = saving.write_or_rescue(partial, {"runs": done, "steps": steps, "repeats": args.repeats,
                                                      "quick": args.quick, "env": env, "partial": True}, stem)
        if err is not None:  # a full disk: the stages' own rescue path, and said at once
            print(f"\ncannot write {partial} ({err.strerror}); the finished runs are in {where}", file=sys.stderr)
        return where

    def keep_partial(path: Path, label: str) -> Path:  # a failed run's partial results, out of its temporary folder
        kept = out_dir / f"{stem}.{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}.failed-run.json"
        try:
            return Path(shutil.move(str(path), kept))
        except OSError:
            return path

    cli.stop_on_signals()  # SIGTERM and SIGHUP stop the harness like Ctrl-C: its run stops with it
    loads = []  # the machine's 1-minute load average after each run: was anything else running?
    try:
        for r in range(args.repeats):
            for i, run in enumerate(runs):
                loads.append(os.getloadavg()[0])
                repeats[i].append(run_once(run, f"[repeat {r + 1}/{args.repeats}, run {i + 1}/{len(runs)}]",
                                           keep_partial))
                keep_finished()
    except (KeyboardInterrupt, RunFailed) as stop:  # keep every finished run
        kept_at = keep_finished() if any(repeats) else partial  # (a stop between a run's end and its write)
        finished = sum(map(len, repeats))
        kept = f"the {finished} finished run(s) are in {kept_at}" if finished else "no run had finished"
        if isinstance(stop, RunFailed):
            print(f"\n{stop}\n{kept}", file=sys.stderr)
            return 1
        cli.say_last(f"\n{getattr(stop, 'word', 'interrupted')}; {kept}")
        return getattr(stop, "status", 130)
    loads.append(os.getloadavg()[0])
    rows = summarize_runs(runs, repeats, on_cpu_time=busy(loads))
    env["device"] = next((r["device"] for r in rows if r["chain"] == "gpu"), "cpu")
    env["load_averages"] = [round(load, 2) for load in loads]
    report = {"rows": rows, "runs": {run["label"]: tries for run, tries in zip(runs, repeats)},
              "steps": steps, "repeats": args.repeats, "quick": args.quick, "env": env}
    where, err = saving.write_or_rescue(out_dir / f"{stem}.json", report, stem)
    if err is not None:  # a full disk at the end: the record is kept elsewhere, and nothing more is written
        cli.say_last(f"cannot write {out_dir / stem}.json ({err.strerror}); the sitting is in {where}; free some "
                     f"space and copy it back")
        return 1
    partial.unlink(missing_ok=True)
    markdown = benchmark_markdown(report)
    try:
        saving.write_text_atomic(out_dir / f"{stem}.md", markdown)
        if args.stage_files:
            for label, tries in report["runs"].items():
                if label in STAGE_FILES:
                    saving.write_json_atomic(Path(args.stage_files) / STAGE_FILES[label], tries[0])
    except OSError as err:
        cli.say_last(f"the sitting is in {where}, but its table or stage files could not be written ({err.strerror}); "
                     f"python -m report rebuilds the tables from it")
        return 1
    log.say(markdown)
    log.say(f"-> {where}")
    if log.stdout_closed:  # (`> /dev/full`, `| head`): the sitting is on disk all the same
        cli.say_last(f"the log was lost: {log.stdout_closed}; the sitting went on and is in {where}")
    return 0


def check_folder(parser, folder: Path, flag: str, create: bool) -> None:
    """A folder the sitting will write into: it is one (or, for --out-dir, can be made) and takes a file."""
    if folder.exists() and not folder.is_dir():
        parser.error(f"{flag} {folder} is a file, not a folder; give a folder")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            parser.error(f"{flag} {folder} cannot be made ({err.strerror}); give another folder")
    if not folder.is_dir():
        parser.error(f"{flag} {folder} does not exist; create it or give another folder")
    try:
        tempfile.NamedTemporaryFile(dir=folder).close()
    except OSError as err:
        parser.error(f"{flag} {folder} cannot be written ({err.strerror}); give another folder")


if __name__ == "__main__":
    sys.exit(main())
