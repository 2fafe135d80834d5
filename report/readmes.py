"""Write the figures in the READMEs from results files, so no number is typed by hand.

A README marks a generated block like this (kinds: `figures` for a results file,
`launches` for benchmarks/gpu_profile.py's output, `benchmark` for benchmarks/run.py's,
`table` for one comparison table of several results files, `runtimes` for how long each of
several results files' runs took, `batches` for one stage's row of a batch sweep, written
PATH#STAGE; several paths are joined by commas):

    <!-- BEGIN figures 2_numpy/results.json vs 1_pure_python/results.json -->
    (generated table)
    <!-- END figures -->

("vs" adds the speed-up over the second file: the ratio of the two medians.)

`python -m report` rewrites every such block from the results file it names;
`python -m report --check` exits 1 if any README is out of date (the tests run it). Chapter 5's
`distributed` blocks name a part of benchmarks/distributed.py's file, PATH#PART (report/distributed.py).
"""

import math
import re
import statistics
import sys
from pathlib import Path

import numpy as np

from report.distributed import distributed_block
from shared.errors import UserError
from shared.results import LOSS_WINDOW, SETTLING_STEPS, final_loss, summarize
from shared.schema import load_results

REPO_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("figures|table|launches|benchmark|runtimes|batches|install|profile|losses|gc|quickstart|page"
         "|compiledprofile|compiled|distributed")
BLOCK = re.compile(rf"(<!-- BEGIN (?P<kind>{KINDS}) (?P<path>\S+)"
                   r"(?: vs (?P<base>\S+))? -->\n)(?P<body>.*?)(<!-- END (?P=kind) -->)", re.S)


def figures_table(results_path: str, base_path: str | None = None) -> str:
    """Markdown table of one run's headline numbers, with the machine it ran on, and its
    speed-up over the run in `base_path` if one is given."""
    res = load_results(REPO_ROOT / results_path)
    s = summarize(res)
    env = res["env"]
    device = env["device"] + (" through the Triton interpreter" if s["interpreter"] else "")
    rows = [
        ("parameters", f"{s['num_params']:,}"),
        ("steps", f"{s['steps']}" + (" (interrupted run)" if res.get("partial") else "")),
        ("loss at step 1", f"{res['losses'][0]:.4f}"),
        (f"loss at step {s['steps']}", f"{res['losses'][-1]:.4f}"),
        (f"mean loss, last {LOSS_WINDOW} steps", f"{s['final_loss']:.4f}"),
        (f"median step time (after {SETTLING_STEPS} warm-up steps)", f"{s['median_step_ms']:.4g} ms"),
        ("total training time", f"{s['total_s']:.4g} s"),
    ]
    if "forward_ms" in res:
        phases = " / ".join(f"{statistics.median(res[k][SETTLING_STEPS:] or res[k]):.3f}"
                            for k in ("forward_ms", "backward_ms", "optimizer_ms"))
        rows.append(("median forward / backward / optimizer", f"{phases} ms"))
    if env.get("timing"):
        rows.append(("timing", env["timing"]))
    if "graph_nodes" in res:
        rows.append(("graph nodes per step (median)", f"{statistics.median(res['graph_nodes']):,.0f}"))
    rows.append(("machine", f"{device}; {env['cpu']}, {env.get('cpu_count')} cores; "
                            f"Python {env['python']}; {env['date'][:10]}"))
    if base_path:
        base = load_results(REPO_ROOT / base_path)
        ratio = summarize(base)["median_step_ms"] / s["median_step_ms"]
        shown = f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"
        rows.append((f"speed-up over `{base_path}`",
                     f"{shown} (ratio of median step times" + ("; below 1 means slower)" if ratio < 1 else ")")))
        if base["env"]["cpu"] != env["cpu"] or base["env"]["device"] != env["device"]:
            rows.append(("note", "the two runs are from different machines: the ratio is not like for like"))
    lines = [f"| measured in `{results_path}` | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def launches_table(profile_path: str) -> str:
    """Kernels per training step (CUDA profiler) and each kernel against naive PyTorch."""
    prof = load_results(REPO_ROOT / profile_path, check=False)
    env = prof["env"]
    lines = [f"| measured in `{profile_path}` on {env['device']}, torch {env['torch']}, {env['date'][:10]} | |",
             "|---|---|",
             f"| stage 3 (eager PyTorch): GPU kernels and copies per step | {prof['stage3_eager']['per_step']:.0f} |",
             f"| stage 4 (our kernels, launched one by one): GPU kernels and copies per step | "
             f"{prof['stage4_per_kernel']['per_step']:.0f} |", "",
             "| op (one call, launch included; `triton.testing.do_bench`) | our kernel, µs | naive PyTorch, µs |",
             "|---|---|---|"]
    for name, row in prof["kernel_bench_us"].items():
        theirs = row.get("torch_us", row.get("torch_foreach_us"))
        lines.append(f"| {name} | {row['triton_us']:.1f} | {theirs:.1f} |")
    return "\n".join(lines) + "\n"


def sitting_line(report: dict) -> str:
    env = report["env"]
    triton = f", Triton {env['triton']}" if env.get("triton") else ""
    return (f"Measured on {env['cpu']} ({env['cpu_count']} cores), device {env['device']}, Python "
            f"{env['python']}, torch {env['torch']}{triton}, {env['date']}; {report['steps']} steps, "
            f"{report['repeats']} repeat(s), one thread per process." + load_words(report))


def load_words(report: dict) -> str:
    """What the machine's load was, where the sitting recorded it, and which clock the speed-ups use."""
    loads = report["env"].get("load_averages")
    if not loads:
        return ""
    on_cpu = any(r.get("speedups_on") == "cpu time" for r in report["rows"])
    return (f" Load average {min(loads):.1f} to {max(loads):.1f} during the sitting: "
            + ("busy, so the CPU rows' speed-ups compare each process's CPU time per step (its waits behind other "
               "processes left out); the ms/step column is the wall clock." if on_cpu else
               "quiet, so the speed-ups compare wall-clock times."))


def benchmark_markdown(*reports: dict) -> str:
    """Benchmark sittings (benchmarks/run.py's JSON): a line naming each machine, then one table.
    Speed-ups are within a sitting: CPU rows over the previous stage, GPU rows over stage 3 there."""
    machine = len(reports) > 1
    lines = [("- " if machine else "") + sitting_line(r) for r in reports] + [""]
    lines += ["| run | " + ("machine | " if machine else "") + "machinery | device | params | steps | median "
              "ms/step | total s | speed-up over previous stage (GPU rows: over stage 3 on the GPU) | cumulative "
              "over stage 1 | mean loss of the last 100 steps (of a shorter run: of all) |",
              "|---|" + ("---|" if machine else "") + "---|---|---|---|---|---|---|---|---|"]
    for report in reports:
        where = f"{report['env']['cpu']}, {report['env']['cpu_count']} cores | " if machine else ""
        for r in report["rows"]:
            ratio = r["speedup_previous"]
            speed = "" if ratio is None else (f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x")
            cumulative = "" if r["speedup_cumulative"] is None else f"{r['speedup_cumulative']:,.0f}x"
            device = r["device"] + (" (Triton interpreter: not a speed)" if r["interpreter"] else "")
            short = " (a shorter run: not comparable)" if r["steps"] < report["steps"] else ""
            lines.append(f"| {r['label']} | {where}{r['machinery']} | {device} | {r['num_params']:,} | {r['steps']} | "
                         f"{r['median_step_ms']:.4g} | {r['total_s']:.3g} | {speed} | {cumulative} | "
                         f"{r['final_loss']:.4f}{short} |")
    return "\n".join(lines) + "\n"


def benchmark_table(report_paths: str) -> str:
    """The committed benchmark sittings named (comma-separated), rendered from their JSON."""
    return benchmark_markdown(*(load_results(REPO_ROOT / path, check=False) for path in report_paths.split(",")))


def run_label(res: dict) -> str:
    """What a run was, from its results file: the stage and how it ran."""
    env, stage = res["env"], res["stage"]
    if stage == "4_triton":
        kernels = env.get("kernels_per_step", 28)  # files from before batching, which had 28, lack the key
        per_op = (f"{kernels} kernels as one CUDA graph" if env.get("cuda_graph")
                  else f"{kernels} kernels, one launch each")
        how = {"step": "one kernel, one launch per step", "run": "one kernel, whole run in one launch"}.get(
            env.get("fused"), per_op)
    else:
        how = {"1_pure_python": "scalar Value autograd", "2_numpy": "NumPy Tensor autograd",
               "3_pytorch": "torch.compile" if env.get("compile") else "PyTorch eager"}[stage]
    return f"{stage}, {how}" + (", Triton interpreter" if env.get("interpreter") else "")


def comparison_table(paths: str) -> str:
    """One table of several runs: losses, step time, and the speed-up over the first row where
    both ran on the same machine (never for the interpreter, whose times are not the kernels')."""
    runs = [(path, load_results(REPO_ROOT / path)) for path in paths.split(",")]
    machine = lambda env: (env["device"], env["cpu"])
    first = runs[0][1]
    lines = [f"| run | device | loss at step 1 | loss at the last step | mean loss, last {LOSS_WINDOW} | "
             f"median ms per step (after {SETTLING_STEPS} warm-up steps) | total s | speed-up over the first row |",
             "|---|---|---|---|---|---|---|---|"]
    for _, res in runs:
        s = summarize(res)
        if s["interpreter"] or summarize(first)["interpreter"]:
            speed = "not a speed (interpreter)" if res is not first else ""
        elif machine(res["env"]) != machine(first["env"]):
            speed = "other machine"
        else:
            ratio = summarize(first)["median_step_ms"] / s["median_step_ms"]
            speed = "" if res is first else (f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x")
        partial = " (interrupted)" if res.get("partial") else ""
        lines.append(f"| {run_label(res)} | {s['device']} | {res['losses'][0]:.4f} | {res['losses'][-1]:.4f} "
                     f"(step {s['steps']}{partial}) | {s['final_loss']:.4f} | {s['median_step_ms']:.4g} | "
                     f"{s['total_s']:.4g} | {speed} |")
    lines.append("")
    seen = []
    for _, res in runs:
        env = res["env"]
        where = (f"{env['device']} on {env['cpu']} ({env.get('cpu_count')} cores), Python {env['python']}, "
                 f"torch {env['torch']}" + (f", Triton {env['triton']}" if env.get("triton") else "")
                 + f", {env['date'][:10]}")
        if where not in seen:
            seen.append(where)
    files = ", ".join(f"`{path}`" for path, _ in runs)
    lines.append(f"From {files}; measured on " + "; and on ".join(seen) + ".")
    return "\n".join(lines) + "\n"


READING_WORDS_PER_MINUTE = 200


def runtimes_list(paths: str) -> str:
    """One line per results file: how long that stage's main.py trained, on which machine."""
    runs = [(path, load_results(REPO_ROOT / path)) for path in paths.split(",")]
    machine = lambda env: f"{env['cpu']} with {env.get('cpu_count')} cores, Python {env['python']}, {env['date'][:10]}"
    first = machine(runs[0][1]["env"])
    lines = []
    for path, res in runs:
        s = summarize(res)
        total = f"{s['total_s'] / 60:.1f} minutes" if s["total_s"] >= 120 else f"{s['total_s']:.3g} s"
        how = " through the Triton interpreter" if s["interpreter"] else ""
        if res["env"].get("world_size", 1) > 1 or s["batch_size"] > 1:  # (chapter 5's run: processes and names)
            how += f" ({res['env'].get('world_size', 1)} processes, {s['batch_size']} names a step)"
        where = "" if machine(res["env"]) == first else f"; on {machine(res['env'])}"
        words = len(re.findall(r"\w+", (REPO_ROOT / res["stage"] / "README.md").read_text()))
        code = sum(1 for line in (REPO_ROOT / res["stage"] / "main.py").read_text().splitlines() if line.strip())
        lines.append(f"- `{res['stage']}/main.py`{how}: {total} for {s['steps']} steps "
                     f"({s['median_step_ms']:.3g} ms per step; `{path}`{where}). To read: its README, "
                     f"{words:,} words (about {words / READING_WORDS_PER_MINUTE:.0f} minutes at "
                     f"{READING_WORDS_PER_MINUTE} words a minute), and {code} non-blank lines of `main.py`")
    lines.append(f"\n(Training time, without Python's start-up, on {first}. Reading time is the words counted, "
                 f"divided by a typical reading speed: an estimate, not a measurement.)")
    return "\n".join(lines) + "\n"


def batches_line(path_and_stage: str) -> str:
    """One stage's row of a batch sweep as one paragraph: a CPU sweep (benchmarks/scaling.py
    --batch-sizes), whose rows are named by stage, or a GPU sitting (benchmarks/gpu_batches.py),
    whose rows are named by label, written with '+' for its spaces. Failed rows are left out."""
    path, name = path_and_stage.split("#")
    sweep = load_results(REPO_ROOT / path, check=False)
    rows = sorted((r for r in sweep["rows"] if r.get("stage", r.get("label")) == name.replace("+", " ")
                   and "error" not in r), key=lambda r: r["batch_size"])
    env, first, last = sweep["env"], rows[0], rows[-1]
    steps = statistics.mode(r["steps"] for r in rows)
    points = "; ".join(f"B = {r['batch_size']}: {r['median_step_ms']:.3g} ms per step, {r['names_per_s']:,.0f} names/s"
                       + ("" if r["steps"] == steps else f" ({r['steps']} steps)") for r in rows)
    where = (f"{env['cpu']} ({env['cpu_count']} cores, one thread)" if env["device"] == "cpu" else
             f"{env['device']} (torch {env['torch']}, Triton {env['triton']}, {env['date'][:10]})")
    return (f"Measured in `{path}` on {where}, {steps} steps each, median after warm-up: {points}. "
            f"At B = {last['batch_size']} a step trains {last['names_per_s'] / first['names_per_s']:,.1f}x the "
            f"names per second of B = {first['batch_size']}.\n")


def install_line(path: str) -> str:
    """The venv's measured size (tools/install_size.py), and its largest packages."""
    report = load_results(REPO_ROOT / path, check=False)
    top = list(report["packages_bytes"].items())[:4]
    biggest = ", ".join(f"{name} {size / 1e6:,.0f} MB" for name, size in top)
    nvidia = (f"; it pulled {len(report['nvidia_packages'])} NVIDIA CUDA packages" if report["nvidia_packages"]
              else f"; torch {report['torch']} is the CPU-only build, so no NVIDIA CUDA packages")
    return (f"Measured in `{path}`: the venv takes {report['venv_bytes'] / 1e9:.1f} GB on "
            f"{report['env']['platform']} (largest: {biggest}){nvidia}; {report['env']['date'][:10]}.\n")


def profile_lines(path: str) -> str:
    """Stage 3's CPU profile (benchmarks/profile_step.py): where a step's time goes, by kind of op."""
    from benchmarks.profile_step import step_parts

    p = load_results(REPO_ROOT / path, check=False)
    total = p["profiled_us_per_step"]
    calls = sum(row["calls"] for row in p["ops_per_step"].values())
    lines = [f"| measured in `{path}` ({p['env']['cpu']}, one thread, torch {p['env']['torch']}, "
             f"{p['env']['date'][:10]}) | µs per step | share |", "|---|---|---|"]
    lines += [f"| {group} | {us:.0f} | {us / total:.0%} |" for group, us in step_parts(p)]
    lines += [f"| one profiled step: its {calls:.0f} op calls and what lies between them | {total:.0f} | 100% |",
              f"| the step's arithmetic, {p['flops_per_step']:,.0f} FLOPs, at this CPU's matmul speed "
              f"({p['cpu_matmul_flop_per_s'] / 1e9:.1f} GFLOP/s) | {p['arithmetic_us_at_matmul_speed']:.2f} | "
              f"{p['arithmetic_us_at_matmul_speed'] / total:.1%} |",
              f"| the same step without the profiler (its median) | {p['median_step_us_unprofiled']:.0f} | |"]
    return "\n".join(lines) + "\n"


def loss_meaning_table(path: str) -> str:
    """benchmarks/loss_meaning.py's report: losses of simpler guessers beside microgpt's, each with
    its perplexity (as many equally likely letters as), and what step 1's loss was."""
    r = load_results(REPO_ROOT / path, check=False)
    last100 = final_loss(load_results(REPO_ROOT / "1_pure_python" / "results.json")["losses"])
    rows = [(f"uniform: 1/{r['vocab_size']} for every token (ln {r['vocab_size']})", r["ln_vocab"]),
            ("microgpt with SPEC.md's initial weights", r["initial_mean_loss"]),
            ("letter frequencies alone (a unigram table counted on these names)", r["unigram_loss"]),
            ("the previous letter alone (a bigram table counted on these names)", r["bigram_loss"]),
            (f"microgpt after {r['trained_steps']} steps (it saw {r['trained_steps']} of these names once)",
             r["trained_mean_loss"])]
    lines = [f"| guesser, scored on all {r['positions']:,} positions of the {r['names']:,} names | loss (nats) "
             f"| as unsure as a fair pick among |", "|---|---|---|"]
    lines += [f"| {what} | {loss:.4f} | {math.exp(loss):.1f} letters |" for what, loss in rows]
    lines.append(f"\nmicrogpt's training loss, the mean of its last 100 steps (one name each, in "
                 f"`1_pure_python/results.json`): {last100:.4f}, as unsure as {math.exp(last100):.1f} letters.")
    lines.append(f"\nStep 1 trains on one name, `{r['first_name']}` ({r['first_name_positions']} positions): loss "
                 f"{r['first_loss']:.4f}. At its first position the initial model gives the 27 tokens "
                 f"probabilities from {r['first_position_p_min']:.3f} to {r['first_position_p_max']:.3f} "
                 f"(uniform: {1 / r['vocab_size']:.3f}). Of the first 2,000 names, "
                 f"{r['first_2000_names_initial_loss_above_ln_vocab']:.0%} score above ln {r['vocab_size']} "
                 f"with the initial weights. (Measured in `{path}`, {r['env']['cpu']}, {r['env']['date'][:10]}: "
                 f"stage 2, float64.)")
    return "\n".join(lines) + "\n"


def gc_line(path: str) -> str:
    """benchmarks/gc_stage1.py's report: stage 1's step time with Python's cyclic garbage collector
    on and off, and the on-run's steps grouped by how many full collections they ran."""
    report = load_results(REPO_ROOT / path, check=False)
    runs = {r["collector"]: r for r in report["runs"]}
    if set(runs) != {True, False}:
        raise UserError(f"{path} needs one run with the collector on and one with it off; rerun "
                        f"benchmarks/gc_stage1.py")
    on, off = runs[True], runs[False]
    median = lambda values: statistics.median(values[SETTLING_STEPS:])
    groups = {}
    for ms, full in zip(on["step_ms"][SETTLING_STEPS:], on["full_collections"][SETTLING_STEPS:]):
        groups.setdefault(full, []).append(ms)
    by_count = "; ".join(f"{len(ms)} steps with {full} full collection{'s' * (full != 1)}: "
                         f"median {statistics.median(ms):.0f} ms" for full, ms in sorted(groups.items()))

    def r2(run):  # how much of the step-time variation a straight line in the node count explains
        nodes, ms = (np.array(run[key][SETTLING_STEPS:], dtype=float) for key in ("graph_nodes", "step_ms"))
        fit = np.polyval(np.polyfit(nodes, ms, 1), nodes)
        return 1 - np.sum((ms - fit) ** 2) / np.sum((ms - ms.mean()) ** 2)

    env = report["env"]
    return (f"Measured in `{path}` ({env['cpu']}, Python {env['python']}, {env['date'][:10]}; "
            f"{len(on['step_ms'])} steps of stage 1's own `train`, twice): with the collector on, as stage 1 runs, "
            f"median {median(on['step_ms']):.0f} ms per step, of which the collector took "
            f"{sum(on['gc_ms']) / sum(on['step_ms']):.0%} of the time ({by_count}); with `gc.disable()`, "
            f"median {median(off['step_ms']):.0f} ms per step, "
            f"{'and every loss equal to the last bit' if on['losses'] == off['losses'] else 'but other losses'}. "
            f"A straight line in the node count explains R² = {r2(on):.2f} of the step-time variation with the "
            f"collector on, {r2(off):.2f} with it off.\n")


def quick_start_line(path: str) -> str:
    """tools/time_quick_start.py's report: the Quick start's commands timed on a fresh clone."""
    r = load_results(REPO_ROOT / path, check=False)
    env = r["env"]
    local = any("file://" in line or "find-links" in line for line in r["pip_config"])
    source = ("from this machine's local package mirror, so without download time: on your connection, add "
              "the time to download the venv's size (below)" if local else "downloaded from the package index")
    minutes = lambda s: f"{s / 60:.1f} minutes" if s >= 90 else f"{s:.0f} s"
    command = r.get("install_command", "pip install --quiet -r requirements.txt")
    return (f"Measured in `{path}` on {env['cpu']} ({env['cpu_count']} cores), Python {env['python']}, on a "
            f"fresh clone of commit {r['commit'][:7]}, {r['date']}: the venv and "
            f"`{command}`{'' if 'extra-index' in command else ' (no CPU index: that machine cannot reach it)'} "
            f"{minutes(r['install_s'])} ({source}); the first run of `1_pure_python/main.py` "
            f"{minutes(r['first_run_s'])}; `python -m pytest` {minutes(r['tests_s'])}, with empty kernel caches "
            f"as on a first run" + (f", and {minutes(r['warm_tests_s'])} run again with the caches it filled (load "
                                   f"average {r['load_average_before']:.1f} before, {r['load_average_after']:.1f} "
                                   f"after)" if "warm_tests_s" in r else "") + ".\n")


def page_line(path: str) -> str:
    """A generated page's size, from the file itself (report/step_page.py writes it)."""
    from report import step_page

    data = step_page.committed_data(REPO_ROOT / path)
    size = (REPO_ROOT / path).stat().st_size
    return (f"`{path}`: {size / 1e6:.1f} MB, one file with its style, data and script inline; "
            f"{len(data['names'])} names ({', '.join(data['names'])}) x the weights after "
            f"{', '.join(map(str, data['steps']))} steps, {len(data['boxes'])} boxes, each from all four stages, "
            f"{len(data['weight_boxes'])} weight gradients and a {len(data['tour'])}-stop walk through the backward "
            f"pass (`python -m report.step_page --screenshot` regenerates it and these pictures).\n")


def compiled_lines(path: str) -> str:
    """benchmarks/compiled_cpu.py's report: eager against compiled per name at each B, on one
    thread and on all cores; the compile time; the arithmetic floor; the compiled step's profile."""
    from benchmarks.compiled_cpu import floors_us

    r = load_results(REPO_ROOT / path, check=False)
    env, sweeps = r["env"], r["sweeps"]
    ratio = "speedup_cpu" if r.get("busy") else "speedup"  # a busy machine: each process's CPU time (run.py's rule)
    head = ["B (names per step)"]
    for sweep in sweeps:
        on = "1 thread" if sweep["threads"] == 1 else f"{sweep['threads']} threads"
        head += [f"eager, {on}", f"compiled, {on}", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(sweeps[0]["rows"]):
        cells = [str(row["batch_size"])]
        for sweep in sweeps:
            other = sweep["rows"][i]
            cells += [f"{other['eager_us_per_name']:,.1f} µs", f"{other['compiled_us_per_name']:,.1f} µs",
                      f"**{other[ratio]:.2f}x**"]
        lines.append("| " + " | ".join(cells) + " |")
    compile_s = [s for row in sweeps[0]["rows"] for s in row["compile_s"][:1]]  # each B's first: a cold cache
    real, padded = floors_us(r, sweeps[0])
    worst = max(row["loss_max_diff"] for sweep in sweeps for row in sweep["rows"])
    lines.append(f"\nMeasured in `{path}` ({env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, "
                 f"{env['date'][:10]}): per name, the fastest of {r['repeats']} runs' median step times "
                 f"({r['steps']} steps each, eager and compiled alternating, the same loop), divided by B"
                 + (f"; the machine was busy (load average {min(r['load_averages']):.1f} to "
                    f"{max(r['load_averages']):.1f}), so the speed-ups compare each process's CPU time per step. "
                    if r.get("busy") else
                    f"; load average {min(r['load_averages']):.1f} to {max(r['load_averages']):.1f}, a quiet machine. "
                    if "load_averages" in r else ". ") +
                 f"Compiling (before step 1, a program per batch width; the first time at each B) took "
                 f"{min(compile_s):.0f} to {max(compile_s):.0f} s on one thread. "
                 f"Over the first 20 steps the two losses differ by at most {worst:.1e} (float32). "
                 f"The arithmetic of a name, {r['floor']['flops_per_name'] / 1e3:,.0f} kFLOP (thousand "
                 f"floating-point operations, forward and backward, counted at B = 1), takes {real:.1f} µs at "
                 f"this CPU's one-thread matmul speed "
                 f"({sweeps[0]['matmul_flop_per_s'] / 1e9:.0f} GFLOP/s); padded to "
                 f"{r['floor']['padded_positions']} positions, as the compiled step computes it in its widest batches, "
                 f"{r['floor']['flops_per_padded_name'] / 1e3:,.0f} kFLOP, {padded:.1f} µs.")
    one = {row["batch_size"]: row for row in sweeps[0]["rows"]}
    verdict = lambda got, goal: f"**{got:.2f}x** (the target: {goal}x, {'met' if got >= goal else 'not met'})"
    if 16 in one and 256 in one:
        lines.append(f"\nAgainst the targets stated above, on one thread: at B = 256, "
                     f"{verdict(one[256][ratio], 2)}; at B = 16, {verdict(one[16][ratio], 2)}; every compile "
                     f"under a minute "
                     f"({'met' if max(compile_s) < 60 else 'not met'}).")
    return "\n".join(lines) + "\n"


def compiled_profile_lines(path: str) -> str:
    """Where benchmarks/compiled_cpu.py's profiled compiled step spends its time, and what was generated."""
    r = load_results(REPO_ROOT / path, check=False)
    prof, code = r["profile"], r["generated"]
    total = prof["profiled_us_per_step"]
    lines = [f"| a compiled step at B = {prof['batch_size']}, one thread, profiled (`{path}`) | ms per step | share |",
             "|---|---|---|"]
    lines += [f"| {group} | {us / 1e3:.2f} | {us / total:.0%} |"
              for group, us in sorted(prof["groups_us_per_step"].items(), key=lambda kv: -kv[1])]
    lines.append(f"| the whole profiled step | {total / 1e3:.2f} | 100% |")
    row = next((row for row in r["sweeps"][0]["rows"] if row["batch_size"] == prof["batch_size"]), None)
    if row is not None:  # the profiler's records cost time of their own: the step without them
        lines.append(f"| the same step unprofiled (the table's fastest median) | "
                     f"{row['compiled_us_per_name'] * prof['batch_size'] / 1e3:.2f} | |")
    mm, bmm = code["library_calls"]["mm"], code["library_calls"]["bmm"]
    calls = (f"{mm} matmuls and {bmm} batched matmuls" if bmm else
             f"the {mm} matmuls of the Linear layers; no batched matmul")
    lines.append(f"\nThe generated code: {code['kernels']} C++ kernels and {mm + bmm} library calls ({calls}) per "
                 f"step, all called from one C++ function.")
    return "\n".join(lines) + "\n"


def _render_block(m) -> str:
    kind, path = m.group("kind"), m.group("path")
    if kind == "figures":
        body = figures_table(path, m.group("base"))
    else:
        body = {"runtimes": runtimes_list, "batches": batches_line, "table": comparison_table,
                "launches": launches_table, "install": install_line, "profile": profile_lines,
                "quickstart": quick_start_line, "gc": gc_line, "losses": loss_meaning_table, "page": page_line,
                "benchmark": benchmark_table, "compiled": compiled_lines,
                "compiledprofile": compiled_profile_lines, "distributed": distributed_block}[kind](path)
    return m.group(1) + body + m.group(6)


def render(text: str) -> str:
    return BLOCK.sub(_render_one_block, text)


def _render_one_block(m) -> str:
    """One block; a file that is not what the block reads (a key missing, a wrong type, an empty
    sweep) is a UserError naming the file and what is wrong, never a traceback."""
    try:
        return _render_block(m)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
            statistics.StatisticsError, RecursionError) as err:
        what = f"has no {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        files = ", ".join(part.split("#")[0] for part in m.group("path").split(","))
        raise UserError(f"{files} is not what a `{m.group('kind')}` block reads ({what}); restore it "
                        f"(git checkout -- {files}) or rerun what writes it") from None


def readmes() -> list[Path]:
    """Every README.md file of the repository (not a folder of that name, nothing under a hidden
    folder or the virtual environment)."""
    return sorted(p for p in REPO_ROOT.glob("**/README.md")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO_ROOT).parts[:-1]))


def readme_text(path: Path) -> str | None:
    """A README's text, or None for one that holds no generated block and is not UTF-8 (a
    learner's notes in another encoding are not ours to read)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if b"<!-- BEGIN " not in raw:
            return None
        raise UserError(f"{path.relative_to(REPO_ROOT)} is not UTF-8 (byte {err.start}); save it as UTF-8") from None


def main(argv: list[str] | None = None) -> int:
    from shared import cli

    parser = cli.Parser(prog="python -m report", description="Rewrite every README's generated blocks from the "
                        "results files they name (so no number is typed by hand), or check them.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README is out of date")
    args = parser.parse_args(argv)
    return cli.run(lambda: rewrite(args.check))


def rewrite(check: bool) -> None:
    """Render every README first, then write the stale ones (atomically): a bad results file stops
    the run before any README changes."""
    from shared.saving import write_text_atomic

    stale = {}
    for path in readmes():
        text = readme_text(path)
        if text is None:
            continue
        try:
            new = render(text)
        except UserError as err:  # a results file the README quotes is missing or cut short
            raise UserError(f"{path.relative_to(REPO_ROOT)}: {err}") from None
        if new != text:
            stale[path] = new
    names = ", ".join(str(path.relative_to(REPO_ROOT)) for path in stale)
    if check:
        if stale:
            raise UserError(f"out of date: {names}; run python -m report")
        return
    for path in stale:
        if not path.stat().st_mode & 0o200:
            raise UserError(f"{path.relative_to(REPO_ROOT)} is read-only; make it writable (chmod u+w) and run "
                            f"python -m report again (nothing was written)")
    for path, new in stale.items():
        write_text_atomic(path, new)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
