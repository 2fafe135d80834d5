"""On one CUDA GPU, in one sitting: names per second against batch size for stage 3 (eager and
torch.compile) and stage 4 (per-op kernels as one CUDA graph, and the one-kernel step).

    python benchmarks/gpu_batches.py --out benchmarks/results/gpu-batches-h100-DATE.json
    python benchmarks/gpu_batches.py --rehearse --out /tmp/b.json    # on a CPU: the same code, tiny, interpreted

Three phases, all written to the one results file, which is rewritten after every row (a
sitting cut short keeps what it measured):

1. Tuning (in this process): for each batch size, the one-kernel step is timed over a few
   steps at every (documents per tile, warps, programs) in TUNING; the fastest is what the
   run in phase 2 uses, and every tried setting is kept.
2. Runs: each row runs as a reader runs it -- its own main.py or fused_step.py, a fresh
   process, the flags recorded -- and its full results file (losses and step times) is kept.
   A row that fails is recorded with its last line, and the rest run. The one-kernel row goes
   on doubling B past the last batch size (at most MAX_DOUBLINGS times) while its names/s rise.
3. Where the time goes, at the one-kernel step's best batch size: the profiler's kernel times
   (the share spent reducing the programs' gradients and in Adam), and FLOP/s against the
   GPU's float32 peak (SMs x 128 lanes x 2 x the SM clock nvidia-smi reports).

--rehearse runs every phase on the CPU through Triton's interpreter, with two batch sizes and
a few steps, so the sitting's code cannot rot between GPUs (tests/test_benchmarks.py).
"""

import functools
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.progress import Progress  # noqa: E402
from shared import cli, results, schema  # noqa: E402
from shared.environment import environment  # noqa: E402
from tools import stages  # noqa: E402

stages.folder("4_triton")  # on the path, for kernels/ and fused_step.py

ROWS = {  # label: (script, flags)
    "3_pytorch eager": ("3_pytorch/main.py", ["--device", "cuda"]),
    "3_pytorch torch.compile": ("3_pytorch/main.py", ["--device", "cuda", "--compile"]),
    "4_triton per-op, CUDA graph": ("4_triton/main.py", []),
    "4_triton one kernel": ("4_triton/fused_step.py", []),  # + the tuned flags
}
COMPILE_BATCHES = (16, 4096)  # torch.compile compiles anew in every process: a few rows, not all
TUNING = {"docs_per_tile": [1, 2], "warps": [4], "programs_per_sm": [2, 4]}
LAST = 100  # the loss column: mean of the last 100 steps
MAX_DOUBLINGS = 2  # past the last batch size, while the one-kernel row's names/s still rise
REHEARSE = False  # --rehearse: the CPU through the interpreter, tiny


def steps_for(batch_size: int) -> int:
    if REHEARSE:
        return 3
    return 300 if batch_size <= 256 else 100 if batch_size <= 4096 else 30


def device() -> str:
    return "cpu" if REHEARSE else "cuda"


def sync() -> None:
    import torch

    if not REHEARSE:
        torch.cuda.synchronize()


def sm_count() -> int:
    import torch

    return 1 if REHEARSE else torch.cuda.get_device_properties(0).multi_processor_count


# ---------------------------------------------------------------------------- phase 1


@functools.cache
def spec_run():
    """SPEC.md's run: config, initial weights, and every document tokenized in training order."""
    from shared.weights import spec_run as spec

    tokenizer, config, docs, state = spec()
    return config, state, [tokenizer.encode_doc(doc) for doc in docs]


def load_fused(batch_size: int, steps: int, **settings):
    """A one-kernel trainer on SPEC.md's run, on the GPU, with every document loaded."""
    import torch

    import fused_step
    from kernels.layout import flat_weights

    config, state, documents = spec_run()
    params = flat_weights(state, config, torch.float32, device())
    trainer = fused_step.FusedTrainer(params, config, steps, batch_size, **settings)
    trainer.load_documents(documents)
    return trainer


def time_fused(trainer, steps: int = 20) -> float:
    """Milliseconds per step over `steps` steps after two warm-up steps, one sync at the end."""
    trainer.launch(0, 2)
    sync()
    start = time.perf_counter()
    trainer.launch(2, steps)
    sync()
    return (time.perf_counter() - start) * 1000 / steps


def tune(batch_sizes: list[int]) -> dict:
    sms = sm_count()
    out = {}
    for batch_size in batch_sizes:
        tried = []
        for docs, warps, per_sm in itertools.product(*TUNING.values()):
            if batch_size == 1 and (docs, per_sm) != (1, 2):
                continue  # one document: one program, one tile; only the warps to choose
            trainer = load_fused(batch_size, 40, programs=per_sm * sms, docs_per_tile=docs, num_warps=warps)
            ms = time_fused(trainer, 2 if REHEARSE else 20)
            tried.append({"docs_per_tile": docs, "warps": warps, "programs": trainer.programs, "ms": ms})
            print(f"tune B={batch_size:6d} docs/tile {docs} warps {warps} programs {trainer.programs:5d}: "
                  f"{ms:8.4f} ms/step", flush=True)
        out[batch_size] = {"tried": tried, "best": min(tried, key=lambda t: t["ms"])}
    return out


# ---------------------------------------------------------------------------- phase 2


def run_row(label: str, batch_size: int, extra: list[str], timeout: int) -> dict:
    script, flags = ROWS[label]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        flags = [f.replace("cuda", "cpu") for f in flags] if REHEARSE else flags
        cmd = [sys.executable, str(REPO_ROOT / script), "--steps", str(steps_for(batch_size)), "--samples",
               "20" if batch_size == 1 else "0", "--batch-size", str(batch_size), "--out", str(out), *flags, *extra]
        env = {**os.environ, "TRITON_INTERPRET": "1"} if REHEARSE else None
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"label": label, "batch_size": batch_size, "error": f"timed out after {timeout} s"}
        if proc.returncode != 0:
            return {"label": label, "batch_size": batch_size, "error": proc.stderr[-1500:],
                    "wall_s": time.perf_counter() - started}
        res = schema.load_results(out)
    summary = results.summarize(res)
    return {
        "label": label, "batch_size": batch_size, "steps": summary["steps"], "flags": [*flags, *extra],
        "median_step_ms": summary["median_step_ms"], "names_per_s": summary["names_per_s"],
        "us_per_name": 1000 * summary["median_step_ms"] / batch_size,
        "last100_loss": statistics.fmean(res["losses"][-LAST:]), "setup_s": res["env"].get("setup_s"),
        "compile_s": res["env"].get("compile_s"), "wall_s": time.perf_counter() - started, "results": res,
    }


# ---------------------------------------------------------------------------- phase 3


def executed_flops(batch_size: int, docs_per_tile: int, C=16, T=16, H=4, V_PAD=32) -> int:
    """Multiply-adds x 2 that the one-kernel step issues per step: every tl.dot of its tiles
    (padded rows, masked heads and the padded vocabulary included), forward and backward."""
    R = docs_per_tile * T
    forward = 2 * R * C * C * 4 + H * 2 * (2 * R * R * C) + 2 * 2 * R * C * 4 * C + 2 * R * C * V_PAD
    backward = (2 * (2 * R * C * V_PAD) + 4 * (2 * R * C * 4 * C) + 2 * (2 * R * C * C)
                + H * 5 * (2 * R * R * C) + 6 * (2 * R * C * C) + 2 * R * C * V_PAD + 2 * R * C * T)
    return -(-batch_size // docs_per_tile) * (forward + backward)


def model_flops(res: dict, C=16, V=27, H=4) -> float:
    """The standard count of useful work per step, averaged over the run: 6 x (matmul
    weights) per real target position, plus attention's 12 x H x D per visible key."""
    weights = 12 * C * C + V * C
    positions = statistics.fmean(res["doc_len"])
    batch = res["config"]["batch_size"]
    mean_n = positions / batch
    return 6 * weights * positions + 12 * C * batch * mean_n * (mean_n + 1) / 2


def peak_flops() -> dict:
    import torch

    if REHEARSE:
        return {"sms": 1, "max_sm_clock_mhz": None, "fp32_peak_flops": None}
    props = torch.cuda.get_device_properties(0)
    clock = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True).stdout.split()[0]
    return {"sms": props.multi_processor_count, "max_sm_clock_mhz": float(clock),
            "fp32_peak_flops": props.multi_processor_count * 128 * 2 * float(clock) * 1e6}


def profile_fused(batch_size: int, best: dict) -> dict:
    """Kernel time per step by kernel, from torch.profiler, over 10 steps after warm-up (in a
    rehearsal, the CPU time of the interpreted launches)."""
    from torch.profiler import ProfilerActivity, profile

    trainer = load_fused(batch_size, 40, programs=best["programs"], docs_per_tile=best["docs_per_tile"],
                         num_warps=best["warps"])
    trainer.launch(0, 3)
    sync()
    steps = 2 if REHEARSE else 10
    if REHEARSE:  # the interpreter emits no kernel events: time the interpreted launches as one entry
        started = time.perf_counter()
        trainer.launch(3, steps)
        per_kernel = {"train_kernel (interpreted)": (time.perf_counter() - started) * 1e6 / steps}
    else:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            trainer.launch(3, steps)
            sync()
        per_kernel = {}
        for event in prof.key_averages():
            if event.device_type.name == "CUDA" and event.count:
                us = getattr(event, "device_time_total", getattr(event, "cuda_time_total", 0))
                per_kernel[event.key] = us / steps
    total = sum(per_kernel.values())
    reduce_us = sum(us for name, us in per_kernel.items() if "reduce" in name)
    return {"batch_size": batch_size, "kernel_us_per_step": per_kernel, "total_kernel_us_per_step": total,
            "reduce_and_adam_share": reduce_us / total if total else None}


def main(argv=None) -> int:
    """The sweep; Ctrl-C, SIGTERM or SIGHUP stop it with one line, the rows measured so far kept
    (beside --out when --out holds a complete sweep)."""
    cli.stop_on_signals()
    try:
        return sweep(argv)
    except KeyboardInterrupt as stop:
        kept = (f"the rows measured so far are in {partial_where}" if Path(partial_where).exists()
                else "no row had been measured")
        cli.say_last(f"{getattr(stop, 'word', 'interrupted')}: {kept}")
        return getattr(stop, "status", 130)


partial_where = "(none yet)"


def sweep(argv=None) -> int:
    global REHEARSE, partial_where
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16, 256, 4096, 32768])
    parser.add_argument("--per-op-max", type=int, default=32768, help="largest B for the per-op row")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per run")
    parser.add_argument("--rehearse", action="store_true", help="on a CPU, tiny, through the interpreter")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    cli.guard_record_out(parser, args.out)  # before anything is computed
    REHEARSE = args.rehearse
    from kernels import backend

    backend.choose(interpret=True if REHEARSE else None)  # before anything imports Triton
    import torch

    if REHEARSE:
        args.batch_sizes = [2]
    elif not torch.cuda.is_available():
        parser.error("this sitting needs a CUDA GPU (or --rehearse, on a CPU)")
    t0 = time.perf_counter()
    env = environment("cpu" if REHEARSE else torch.cuda.get_device_name(), cuda=torch.version.cuda,
                              interpreter=REHEARSE)
    progress = Progress(args.out, "gpu-batches")  # a complete sweep in --out is never replaced by this one
    partial_where = str(progress.unfinished)
    tuning = tune(args.batch_sizes)
    rows = []

    state = {"complete": False}  # once the planned rows and their profile are written, the record stays complete

    def write(**more):  # after every row: a sitting cut short still leaves what it measured
        state.update(more)
        report = {"rows": rows, "tuning": {str(b): t for b, t in tuning.items()}, "env": env,
                  "sitting_s": time.perf_counter() - t0, "rehearsal": REHEARSE,
                  **{k: v for k, v in state.items() if k != "complete"}}
        report["path"] = str(progress.write(report, state["complete"]))
        return report

    def measure(label, batch_size, extra=()):
        row = run_row(label, batch_size, list(extra), args.timeout)
        rows.append(row)
        write()  # on disk before it is shown (a doubled row after the profile: still complete)
        shown = (f"{row['median_step_ms']:9.4f} ms/step {row['names_per_s']:14,.0f} names/s "
                 f"{row['us_per_name']:9.4f} us/name loss {row['last100_loss']:.4f}" if "error" not in row
                 else "FAILED " + (row["error"].strip().splitlines() or ["(no output)"])[-1][:200])
        print(f"B={batch_size:6d} {label:30s} {shown}", flush=True)
        return row

    def fused_flags(best):
        return ["--programs", str(best["programs"]), "--docs-per-tile", str(best["docs_per_tile"]),
                "--warps", str(best["warps"])]

    for batch_size in args.batch_sizes:
        for label in ROWS:
            if label.startswith("4_triton per-op") and batch_size > args.per_op_max:
                continue
            if label.endswith("compile") and batch_size not in ((2,) if REHEARSE else COMPILE_BATCHES):
                continue
            measure(label, batch_size, fused_flags(tuning[batch_size]["best"]) if label.endswith("one kernel") else [])
    fused = [r for r in rows if r["label"] == "4_triton one kernel" and "error" not in r]
    compare_with_eager(rows)
    if not fused:
        write(profile=None)
        print("no one-kernel row succeeded: no profile")
        return 1
    profiled = max(fused, key=lambda r: r["names_per_s"])
    report = write(profile=where_the_time_goes(profiled, tuning, args.batch_sizes), complete=True)
    batch_size = args.batch_sizes[-1]
    for _ in range(MAX_DOUBLINGS):  # names/s still rising at the largest B: double it, a bounded number of times
        if REHEARSE or fused[-1]["batch_size"] != batch_size or (
                len(fused) >= 2 and fused[-1]["names_per_s"] <= fused[-2]["names_per_s"]):
            break
        batch_size *= 2
        row = measure("4_triton one kernel", batch_size, fused_flags(tuning[args.batch_sizes[-1]]["best"]))
        if "error" in row:
            break
        fused.append(row)
    best = max(fused, key=lambda r: r["names_per_s"])
    profile = report["profile"] if best is profiled else where_the_time_goes(best, tuning, args.batch_sizes)
    report = write(profile=profile, complete=True)  # with the doubled rows
    print(f"-> {report['path']} ({report['sitting_s']:.0f} s)")
    return 0


def compare_with_eager(rows: list[dict]) -> None:
    """The batched stage 4 and compile trajectories against stage 3 eager's on this GPU, per B."""
    for row in rows:
        base = next((r for r in rows if r["label"] == "3_pytorch eager" and r["batch_size"] == row["batch_size"]
                     and "error" not in r), None)
        if base and "error" not in row and row is not base:
            row["max_abs_dloss_vs_eager"] = max(abs(a - b) for a, b in zip(row["results"]["losses"],
                                                                           base["results"]["losses"]))


def where_the_time_goes(top: dict, tuning: dict, batch_sizes: list[int]) -> dict:
    """The profile of the one-kernel row `top`, and its FLOP/s against the GPU's float32 peak."""
    best = tuning.get(top["batch_size"], tuning[batch_sizes[-1]])["best"]
    where = profile_fused(top["batch_size"], best)
    peak = peak_flops()
    seconds = top["median_step_ms"] / 1000
    where.update(peak, executed_flops_per_step=executed_flops(top["batch_size"], best["docs_per_tile"]),
                 model_flops_per_step=model_flops(top["results"]))
    where["executed_flop_per_s"] = where["executed_flops_per_step"] / seconds
    where["model_flop_per_s"] = where["model_flops_per_step"] / seconds
    where["executed_share_of_peak"] = (where["executed_flop_per_s"] / peak["fp32_peak_flops"]
                                       if peak["fp32_peak_flops"] else None)
    print(f"profile at B={top['batch_size']}: {where['total_kernel_us_per_step']:.1f} us of kernels per step, "
          f"reduce+Adam {100 * (where['reduce_and_adam_share'] or 0):.1f}%; executed "
          f"{where['executed_flop_per_s'] / 1e12:.4f} TFLOP/s"
          + (f" = {100 * where['executed_share_of_peak']:.1f}% of {peak['fp32_peak_flops'] / 1e12:.1f} TFLOP/s "
             "fp32 peak" if where["executed_share_of_peak"] else "")
          + f"; model {where['model_flop_per_s'] / 1e12:.4f} TFLOP/s", flush=True)
    return where


if __name__ == "__main__":
    sys.exit(main())
