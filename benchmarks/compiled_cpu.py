"""What a compiler buys on a CPU: stage 3's eager step against its compiled step, per name.

    python benchmarks/compiled_cpu.py            # benchmarks/results/compiled-cpu-DATE.json, 3_pytorch/compiled.png
                                                 # and 3_pytorch/compiled_kernel.cpp (7 to 10 minutes on 2 cores)
    python benchmarks/compiled_cpu.py --redraw benchmarks/results/compiled-cpu-DATE.json

Every number is stage 3's own `train` (3_pytorch/main.py), eager and with `--compile`, run
from its command line in child processes, each starting with an empty Inductor cache: the first
compile at each B is a cold one, its repeats find that B's code in the cache. Both ways the
loop is the same (the batch's rows gathered from a table of every document built before step
1, fused Adam, its schedule); --compile compiles the forward and backward, one program per
batch width (the batch's longest document, rounded up to a multiple of 4). For one thread,
and for all of this machine's cores:

- at B = 1, 16, 64, 256 and 1024, eager and compiled runs alternate, three of each; a figure is
  the fastest of the three runs' medians (after the warm-up steps): a neighbour's load on a
  shared machine only ever adds time. Each run's median CPU time (the process's, per step) is
  kept beside it, and the last lines print both ratios: on a busy machine the wall clock
  counts a neighbour's time too. The compiled run's compile (Dynamo's trace, Inductor's C++,
  the build) is its warm-up, timed apart from the steps;
- the losses of the first 20 steps both ways, and their largest difference;
- this CPU's matmul speed on the same threads (benchmarks/profile_step.py's 512 x 512 matmul).

Once, on one thread: the arithmetic floor (the FLOPs of a name, counted by
torch.utils.flop_counter over B = 1 steps, which have no padding, and of a name padded to the
longest document's positions, the widest batch the compiled step computes; attention counted as the
matmuls it runs there); where the compiled step's time goes at B = 256 (torch.profiler, with Inductor's
records of its own kernels); the page faults of a step, eager and compiled (getrusage); and
the generated code: its C++ kernels counted, one copied to 3_pytorch/compiled_kernel.cpp.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from shared import cli, results, saving, schema  # noqa: E402
from shared.environment import environment  # noqa: E402

BATCHES = (1, 16, 64, 256, 1024)
PROFILED_BATCH = 256
COMPARED_STEPS = 20  # the losses compared, eager against compiled
PLOT = REPO_ROOT / "3_pytorch" / "compiled.png"
KERNEL_SHOWN = "relu_threshold_backward"  # the generated loop copied out for the reader: ReLU's backward
GROUPS = [  # (group, test on a profiler record's name), first match wins
    ("matmuls (the library's mm)", lambda name: name in ("aten::mm", "aoti_torch_cpu_mm_out")),
    ("attention: its products as loops (small_products_as_loops), with its softmax", lambda name: name in (
        "aten::bmm", "aoti_torch_cpu_bmm_out") or name.startswith("graph_") and "_safe_softmax" in name),
    ("the other generated C++ loops", lambda name: name.startswith("graph_")),
    ("Adam (torch.optim's fused kernel, eager) and zero_grad", lambda name: name.startswith("Optimizer.") or name in (
        "aten::_fused_adam_", "aten::_foreach_add_")),
    ("Dynamo's guards (checking the inputs still fit the graph)", lambda name: name == "TorchDynamo Cache Lookup"),
    ("the C++ wrapper's own time (allocating buffers, calling the kernels)", lambda name: name.startswith((
        "## Call CompiledFxGraph", "Torch-Compiled Region", "AOTDispatcher", "Pregraph bytecode"))),
]
LOOP = "the loop around it (gathering the batch, the schedule, Python)"  # every other record


# ---------------------------------------------------------------------------------- children

def stage3_run(threads: int, batch_size: int, steps: int, compiled: bool, max_steps: int | None = None):
    """A run of stage 3's own command line, in this process (the child)."""
    from shared import runner
    from tools import stages

    stage3 = stages.load("3_pytorch")
    argv = ["--device", "cpu", "--threads", str(threads), "--batch-size", str(batch_size), "--steps", str(steps),
            "--samples", "0", *(["--compile"] if compiled else [])]
    return stage3, runner.start(stage3.__file__, stage3.FLAGS, argv, max_steps=max_steps)


def fresh_compiler() -> None:
    """Forget what Dynamo compiled in this process, so a compiled run compiles as a reader's first
    run does (the Inductor cache on disk stays: a repeat at the same B finds its code there)."""
    import torch._dynamo

    torch._dynamo.reset()


def median_ms(run, clock: str = "step_ms") -> float:
    """The run's median step after the warm-up steps: wall time (step_ms), or the process's CPU
    time (cpu_ms), which a neighbour's load on a shared machine inflates much less."""
    return statistics.median(run.record.results([])[clock][results.SETTLING_STEPS:])


def child_sweep(threads: int, batches: list[int], steps: int, repeats: int) -> dict:
    """Eager and compiled at each B, alternating; every run's median, compile time and losses."""
    from benchmarks.profile_step import matmul_flop_per_s

    rows = []
    for batch_size in batches:
        for repeat in range(repeats):
            for compiled in (False, True):
                stage3, run = stage3_run(threads, batch_size, steps, compiled)
                fresh_compiler()
                stage3.train(run)
                rows.append({"batch_size": batch_size, "compiled": compiled, "repeat": repeat,
                             "median_step_ms": median_ms(run), "median_cpu_ms": median_ms(run, "cpu_ms"),
                             "compile_s": run.env.get("compile_s"),
                             "losses": run.losses[:COMPARED_STEPS]})
                print(f"threads {threads} B {batch_size} {'compiled' if compiled else 'eager'}: "
                      f"{rows[-1]['median_step_ms']:.3f} ms per step", file=sys.stderr, flush=True)
    import torch

    return {"threads": threads, "torch_threads": torch.get_num_threads(), "rows": rows,
            "matmul_flop_per_s": matmul_flop_per_s()}


def child_floor() -> dict:
    """FLOPs per name, forward and backward, attention included (counted as the matmuls the compiled
    step runs): real (B = 1 steps, no padding) and padded to the longest document's positions, as
    the compiled step computes a row of its widest batches."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    stage3, run = stage3_run(1, 1, 1000, False, max_steps=100)
    math_attention = torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH)  # its matmuls counted
    with math_attention, FlopCounterMode(display=False) as counter:
        stage3.train(run)
    real = counter.get_total_flops() / run.steps_to_train
    model = stage3.load_weights(stage3.GPT(run.config), run.initial_weights)
    inputs, targets, _ = stage3.tokenized_documents(run)  # (N, T): every row padded to the longest document
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        for row in range(100):
            model(inputs[row:row + 1], targets[row:row + 1])[1].backward()
    return {"flops_per_name": real, "flops_per_padded_name": counter.get_total_flops() / 100,
            "padded_positions": inputs.shape[1], "names_counted": run.steps_to_train}


def child_profile(steps: int) -> dict:
    """Where the compiled step's time goes at B = PROFILED_BATCH, one thread: torch.profiler
    over steps after the warm-up, Inductor recording each of its kernels by name."""
    import torch._inductor.config
    from torch.profiler import ProfilerActivity, profile, schedule

    torch._inductor.config.cpp.enable_kernel_profile = True
    stage3, run = stage3_run(1, PROFILED_BATCH, steps, True)
    skip, active = 5, steps - 10
    steps_seen = schedule(wait=1, warmup=skip - 1, active=active, repeat=1)  # the warm-up and first steps: not seen
    with profile(activities=[ProfilerActivity.CPU], schedule=steps_seen) as prof:
        log = run.end_step

        def log_and_tick(loss, **series):  # the profiler's schedule advances once per step
            log(loss, **series)
            prof.step()
        run.end_step = log_and_tick
        stage3.train(run)
    events = {e.key: (e.self_cpu_time_total, e.count) for e in prof.key_averages()}
    groups, kernels, calls = {}, set(), {}
    for name, (us, count) in events.items():
        group = next((g for g, test in GROUPS if test(name)), LOOP)
        groups[group] = groups.get(group, 0.0) + us / active
        if name.startswith("graph_"):
            kernels.add(name)
        if name.startswith("aoti_torch_cpu_") or name in ("aten::mm", "aten::bmm"):
            calls[name] = calls.get(name, 0) + count / active
    profiled = sum(groups.values())
    return {"batch_size": PROFILED_BATCH, "steps_profiled": active, "groups_us_per_step": groups,
            "profiled_us_per_step": profiled, "kernels_run": len(kernels), "library_calls_per_step": calls}


def child_faults(steps: int) -> dict:
    """Minor page faults per step (the first touch of a page the process was just given), eager
    and compiled, at B = PROFILED_BATCH on one thread, counted by the kernel (getrusage) over the
    steps after the warm-up ones."""
    import resource

    out = {}
    for compiled in (False, True):
        stage3, run = stage3_run(1, PROFILED_BATCH, steps, compiled)
        fresh_compiler()
        counts, log = [], run.end_step

        def log_and_count(loss, log=log, counts=counts, **series):
            log(loss, **series)
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        run.end_step = log_and_count
        stage3.train(run)
        seen = counts[results.SETTLING_STEPS - 1:]
        out["compiled" if compiled else "eager"] = (seen[-1] - seen[0]) / (len(seen) - 1)
    return out


def generated_code(cache_dir: Path) -> dict:
    """The C++ Inductor wrote for the compiled step (its wrapper and kernels, one file): how many
    kernels it defines, how many library calls the wrapper makes, and one kernel's source."""
    sources = [p for p in cache_dir.rglob("*.cpp") if "cpp_fused_" in p.read_text(errors="replace")]
    text = max(sources, key=lambda p: p.stat().st_size).read_text()
    definitions = re.findall(r'^extern "C"\s+void\s+(cpp_fused_\w+)\(', text, re.M)
    kernels = sorted(set(definitions))
    shown = next(k for k in kernels if KERNEL_SHOWN in k)
    start = [m.start() for m in re.finditer(rf'^extern "C"\s+void\s+{shown}\(', text, re.M)][-1]  # the body
    end = text.index("\n}\n", start) + 3
    return {"kernels": len(kernels), "kernel_names": kernels,
            "library_calls": {op: len(re.findall(rf"aoti_torch_cpu_{op}_out\(", text)) for op in ("mm", "bmm")},
            "shown_kernel": shown, "shown_source": text[start:end]}


def child_main(args) -> int:
    if args.child == "sweep":
        report = child_sweep(args.threads, args.batch_sizes, args.steps, args.repeats)
    elif args.child == "floor":
        report = child_floor()
    elif args.child == "profile":
        report = child_profile(args.steps)
    else:
        report = child_faults(args.steps)
    Path(args.child_out).write_text(json.dumps(report))
    return 0


# ---------------------------------------------------------------------------------- the parent

def in_child(kind: str, args, threads: int = 1) -> tuple[dict, Path]:
    """Run one child with its own empty Inductor cache; its report, and the cache's folder."""
    cache = Path(tempfile.mkdtemp(prefix=f"compiled-cpu-{kind}-"))
    out = cache / "report.json"
    cmd = [sys.executable, __file__, "--child", kind, "--child-out", str(out), "--threads", str(threads),
           "--steps", str(args.steps), "--repeats", str(args.repeats),
           "--batch-sizes", *map(str, args.batch_sizes)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor")})
    return json.loads(out.read_text()), cache / "inductor"


def summarize(sweep: dict) -> list[dict]:
    """One row per B: each mode's fastest median, per name, and the speed-up."""
    rows = []
    for batch_size in sorted({r["batch_size"] for r in sweep["rows"]}):
        runs = [r for r in sweep["rows"] if r["batch_size"] == batch_size]
        eager = min(r["median_step_ms"] for r in runs if not r["compiled"])
        compiled = min(r["median_step_ms"] for r in runs if r["compiled"])
        diff = max(abs(a - b) for e in runs if not e["compiled"] for c in runs if c["compiled"]
                   for a, b in zip(e["losses"], c["losses"]))
        row = {"batch_size": batch_size, "eager_us_per_name": eager * 1e3 / batch_size,
               "compiled_us_per_name": compiled * 1e3 / batch_size, "speedup": eager / compiled,
               "compile_s": [r["compile_s"] for r in runs if r["compiled"]], "loss_max_diff": diff}
        if all(r.get("median_cpu_ms") for r in runs):  # the same, on each process's CPU time (a busy machine's)
            row["speedup_cpu"] = (min(r["median_cpu_ms"] for r in runs if not r["compiled"])
                                  / min(r["median_cpu_ms"] for r in runs if r["compiled"]))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--steps", type=int, default=40, help="steps per run (the first 10 are warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode at each B")
    parser.add_argument("--out", help="the results file (default benchmarks/results/compiled-cpu-DATE.json)")
    parser.add_argument("--redraw", metavar="FILE", help="only draw 3_pytorch/compiled.png again from FILE")
    parser.add_argument("--child", choices=("sweep", "floor", "profile", "faults"), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.out:  # checked before the sweep's minutes: never the names, a source file or a read-only record
        cli.guard_record_out(parser, args.out)
    import matplotlib

    matplotlib.use("Agg")  # files, not windows (a notebook calling draw() keeps its own backend)
    if args.redraw:
        draw(schema.load_results(Path(args.redraw), check=False)).savefig(PLOT, dpi=110, bbox_inches="tight")
        return 0
    cores = os.cpu_count() or 1
    sweeps, loads = [], [os.getloadavg()[0]]  # was anything else running? (benchmarks/run.py's rule decides)
    for threads in sorted({1, cores}):
        sweep, _ = in_child("sweep", args, threads)
        loads.append(os.getloadavg()[0])
        sweeps.append({"threads": threads, "matmul_flop_per_s": sweep["matmul_flop_per_s"],
                       "rows": summarize(sweep), "runs": sweep["rows"]})
    floor, _ = in_child("floor", args)
    profile, _ = in_child("profile", args)
    faults, cache = in_child("faults", args)
    code = generated_code(cache)  # B = PROFILED_BATCH's, without the profile's records in it
    from benchmarks.run import busy

    report = {"sweeps": sweeps, "floor": floor, "profile": profile, "generated": code, "page_faults_per_step": faults,
              "steps": args.steps, "repeats": args.repeats, "env": environment("cpu"),
              "load_averages": [round(load, 2) for load in loads], "busy": busy(loads)}
    date = report["env"]["date"][:10]
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / f"compiled-cpu-{date}.json")
    saving.write_json_atomic(out, report)
    kernel = REPO_ROOT / "3_pytorch" / "compiled_kernel.cpp"
    kernel.write_text(f"// One of the {code['kernels']} C++ kernels Inductor generated for stage 3's compiled step\n"
                      f"// (B = {PROFILED_BATCH}, float32, torch {report['env']['torch']}, {report['env']['cpu']}, "
                      f"{date}),\n// copied by benchmarks/compiled_cpu.py from its cache: ReLU's backward.\n"
                      + code["shown_source"])
    draw(report).savefig(PLOT, dpi=110, bbox_inches="tight")
    for sweep in sweeps:
        for row in sweep["rows"]:
            print(f"{sweep['threads']} thread(s), B = {row['batch_size']}: eager {row['eager_us_per_name']:.1f} "
                  f"µs/name, compiled {row['compiled_us_per_name']:.1f} ({row['speedup']:.2f}x; on CPU time "
                  f"{row['speedup_cpu']:.2f}x)")
    print(f"-> {out}")
    return 0


# ---------------------------------------------------------------------------------- the plot

def floors_us(report: dict, sweep: dict) -> tuple[float, float]:
    """The arithmetic of a name, and of a padded name, at this CPU's matmul speed (µs)."""
    speed = sweep["matmul_flop_per_s"]
    return report["floor"]["flops_per_name"] / speed * 1e6, report["floor"]["flops_per_padded_name"] / speed * 1e6


def draw(report: dict):
    """The figure: µs per name against B, eager and compiled, one thread and all, with the floor
    lines; and where a compiled step's time goes beside the eager step's."""
    import matplotlib
    import matplotlib.pyplot as plt

    from report import plotting

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 5.6), gridspec_kw={"width_ratios": [3, 2]})
    colors = {False: plotting.stage_color("3_pytorch", "cpu"), True: "#0e7c86"}
    for sweep in report["sweeps"]:
        style = "-" if sweep["threads"] == 1 else "--"
        rows = sweep["rows"]
        many = "" if sweep["threads"] == 1 else "s"
        for compiled in (False, True):
            key = "compiled_us_per_name" if compiled else "eager_us_per_name"
            ax.plot([r["batch_size"] for r in rows], [r[key] for r in rows], style, marker="o", color=colors[compiled],
                    label=f"{'compiled (--compile)' if compiled else 'eager'}, {sweep['threads']} thread{many}")
        for r in rows:  # the speed-ups, along the top: one row per thread count
            ax.annotate(f"{r['speedup']:.1f}x", (r["batch_size"], 0.96 if sweep["threads"] == 1 else 0.91),
                        xycoords=("data", "axes fraction"), ha="center", fontsize=8, color=colors[True],
                        fontstyle="normal" if sweep["threads"] == 1 else "italic")
    for sweep, y in zip(report["sweeps"], (0.96, 0.91)):
        ax.annotate(f"speed-up, {sweep['threads']} thread{'s' * (sweep['threads'] > 1)}:", (0.09, y),
                    xycoords=("data", "axes fraction"), fontsize=7, color="#555555")
    ax.set_xlim(0.08, 1600)
    one = report["sweeps"][0]
    real, padded = floors_us(report, one)
    ax.axhline(padded, color="#555555", ls=":", lw=1.2,
               label=f"arithmetic of a name padded to the longest document's positions: {padded:.1f} µs")
    ax.axhline(real, color="k", ls=":", lw=1.2,
               label=f"arithmetic of a name ({report['floor']['flops_per_name'] / 1e3:,.0f} kFLOP): {real:.1f} µs")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plotting.integer_ticks(ax.xaxis, [r["batch_size"] for r in one["rows"]])
    plotting.readable_log_axis(ax.yaxis)
    ax.set(xlabel="B, names per step", ylabel="µs per name (fastest of 3 runs' medians)",
           title="Stage 3, eager and compiled: time per name (lower is better; the floor lines are at "
                 f"{one['matmul_flop_per_s'] / 1e9:.0f} GFLOP/s, one thread's matmul speed)")
    ax.title.set_fontsize(9)
    plotting.legend_below(ax, ncol=2, fontsize=8)

    # Like with like: both bars are unprofiled medians (the profiler's records slow a step); the
    # compiled bar is split in the shares the profiled step spent in each group
    prof = report["profile"]
    row = next(r for r in one["rows"] if r["batch_size"] == prof["batch_size"])
    eager_us, compiled_us = (row[key] * prof["batch_size"] for key in ("eager_us_per_name", "compiled_us_per_name"))
    parts = sorted(prof["groups_us_per_step"].items(), key=lambda kv: -kv[1])
    left, cmap = 0.0, plt.get_cmap("tab10")
    for i, (group, us) in enumerate(parts):
        share = us / prof["profiled_us_per_step"]
        bx.barh(1, share * compiled_us, left=left, height=0.5, color=cmap(i), label=f"{group}: {share:.0%}")
        left += share * compiled_us
    bx.barh(0, eager_us, height=0.5, color="#bbbbbb")
    for y, us in ((0, eager_us), (1, compiled_us)):
        bx.text(us, y, f" {us / 1e3:.1f} ms", va="center", fontsize=8)
    bx.set_yticks([0, 1], ["eager step\n(its median)", "compiled step\n(its median)"])
    bx.set_ylim(-0.5, 1.6)
    bx.set_xlim(0, eager_us * 1.15)
    bx.set(xlabel="ms per step", title=f"Where a step's time goes (B = {prof['batch_size']}, one thread):\n"
                                       f"medians, the compiled one split in its profile's shares")
    bx.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda us, _: f"{us / 1e3:g}"))
    bx.title.set_fontsize(9)
    plotting.legend_below(bx, ncol=1, fontsize=8)
    env = report["env"]
    fig.suptitle(f"{env['cpu']} ({env['cpu_count']} cores), torch {env['torch']}, {env['date'][:10]}", fontsize=10)
    return fig


if __name__ == "__main__":
    sys.exit(main())
