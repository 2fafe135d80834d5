"""The figures of the top-level README, drawn from committed benchmark results only.

    python -m report.benchmark_plots

Reads the newest full CPU benchmark and GPU benchmark in benchmarks/results/, the scaling
sweeps and the newest batch sweep, and writes loss_curves.png, step_time.png, scaling.png and
batch_throughput.png into benchmarks/
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import transforms  # noqa: E402

from report import plotting  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "benchmarks"  # the figures go beside the benchmarks they draw
RESULTS = HERE / "results"


def newest(pattern: str) -> Path:
    paths = sorted(p for p in RESULTS.glob(pattern)  # complete sittings: not a .partial.json, a .failed-run.json
                   if not p.stem.endswith("-quick") and p.name.count(".") == 1)
    if not paths:
        raise SystemExit(f"no benchmark results matching {pattern} in {RESULTS}; run benchmarks/run.py first")
    return paths[-1]


def main(argv: list[str] | None = None) -> int:
    from shared.cli import Parser

    Parser(prog="python -m report.benchmark_plots", description=__doc__.splitlines()[0]).parse_args(argv)
    cpu_path, gpu_path = newest("*core-20*.json"), newest("*core-nvidia-*-20*.json")
    cpu, gpu = json.loads(cpu_path.read_text()), json.loads(gpu_path.read_text())

    # 1. every run's loss curve on one axis: they coincide. Like with like: --steps is also the length of the
    # learning-rate schedule, so a shorter run is not the first steps of this one; it is left out, and said so.
    fig, ax = plt.subplots(figsize=(10, 5))
    schedule = max(tries[0]["config"]["steps"] for report in (cpu, gpu) for tries in report["runs"].values())
    left_out = []
    for report, style in ((cpu, "-"), (gpu, "--")):
        machine = report["env"]["cpu"] + ("" if report is cpu else f" + {report['env']['device']}")
        for label, tries in report["runs"].items():
            res = tries[0]
            if res["config"]["steps"] != schedule:
                left_out.append(f"{label} on {machine}: a {res['config']['steps']}-step run, whose learning rate "
                                f"falls to 0 in {res['config']['steps']} steps")
                continue
            ax.plot(np.arange(1, len(res["losses"]) + 1), plotting.smooth(res["losses"]), ls=style, lw=1.5,
                    color=plotting.color_of(res), label=f"{label} on {machine} ({len(res['losses'])} steps)")
    ax.set(xlabel="step", ylabel=f"loss ({plotting.SMOOTH_WINDOW}-step mean)",
           title=f"Every stage, every machine, SPEC.md's {schedule}-step schedule: one loss curve")
    plotting.legend_below(ax, ncol=2, fontsize=8)
    if left_out:  # in the empty upper right, above the curve
        ax.text(0.98, 0.96, "Left out, since a shorter schedule is another run:\n" + "\n".join(left_out),
                transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#444444")
    fig.savefig(HERE / "loss_curves.png", dpi=110, bbox_inches="tight")

    # 2. median step time per run, log scale, with speed-ups
    rows = [r for r in cpu["rows"] if not r["interpreter"]] + [r for r in gpu["rows"] if r["chain"] == "gpu"]
    fig, ax = plt.subplots(figsize=(11, 5))
    labels = [f"{r['label']} [{'GPU' if r['chain'] == 'gpu' else 'CPU'}]" for r in rows]
    medians = [r["median_step_ms"] for r in rows]
    colors = [plotting.color_of((cpu if r["chain"] == "cpu" else gpu)["runs"][r["label"]][0]) for r in rows]
    for i, (ms, color) in enumerate(zip(medians, colors)):  # dots: a bar's length on a log axis says nothing
        ax.plot([ms], [i], "o", ms=11, color=color)
        ax.axhline(i, color="#dddddd", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    beside = transforms.blended_transform_factory(ax.transAxes, ax.transData)  # labels right of the axes
    for i, r in enumerate(rows):
        note = ""
        if r["chain"] == "cpu" and r["speedup_previous"]:
            note = (f": {plotting.ratio_text(r['speedup_previous'])} over the previous stage, "
                    f"{plotting.ratio_text(r['speedup_cumulative'])} over stage 1"
                    + (" (on CPU time: the machine was busy)" if r.get("speedups_on") == "cpu time" else ""))
        elif r["chain"] == "gpu" and r["speedup_previous"]:
            note = f": {plotting.ratio_text(r['speedup_previous'])} over stage 3 on the GPU"
        ax.text(1.02, i, f"{r['median_step_ms']:.3g} ms{note}", va="center", fontsize=8, transform=beside)
    ax.set_xlim(min(medians) / 2, max(medians) * 2)
    plotting.readable_log_axis(ax.xaxis)
    ax.set(xlabel="median ms per step (log scale: equal steps are equal ratios)",
           title=f"CPU rows: {cpu['env']['cpu']}, {cpu['env']['cpu_count']} cores. "
                 f"GPU rows: {gpu['env']['device']}. Each group in one sitting.")
    fig.savefig(HERE / "step_time.png", dpi=110, bbox_inches="tight")

    # 3. scaling: width (one layer) and depth (n_embd 16), CPU sweep and GPU sweep
    # width panel: the width sweeps; depth panel: n_embd 16 rows of the CPU sweep and the GPU depth sweep
    sweeps = {path.name: json.loads(path.read_text())["rows"] for path in sorted(RESULTS.glob("scaling-*.json"))}
    width = [r for name, rows in sweeps.items() if "depth" not in name for r in rows if r["n_layer"] == 1]
    depth = [r for name, rows in sweeps.items() if "depth" in name or "cpu" in name
             for r in rows if r["n_embd"] == 16 and r["stage"] != "1_pure_python"]
    fig, axes = plt.subplots(1, 2, figsize=(15, 5))
    plotting.plot_scaling(axes[0], width, "n_embd")
    axes[0].set_title("Step time against width (n_layer 1)")
    plotting.plot_scaling(axes[1], depth, "n_layer")
    axes[1].set_title("Step time against depth (n_embd 16)")
    fig.savefig(HERE / "scaling.png", dpi=110, bbox_inches="tight")

    # 4. batches: names per second and step time against the batch size, one sitting on the CPU
    batch_path = newest("batch-cpu-*.json")
    batch = json.loads(batch_path.read_text())
    fig, axes = plt.subplots(1, 2, figsize=(15, 5))
    plotting.plot_scaling(axes[0], batch["rows"], "batch_size", y="names_per_s")
    plotting.plot_scaling(axes[1], batch["rows"], "batch_size")
    fig.suptitle(f"Batches on {batch['env']['cpu']} ({batch['env']['cpu_count']} cores, one thread per run), "
                 f"{batch['env']['date'][:10]}: {batch_path.name}")
    fig.savefig(HERE / "batch_throughput.png", dpi=110, bbox_inches="tight")
    print("wrote", ", ".join(str(HERE / n) for n in ("loss_curves.png", "step_time.png", "scaling.png",
                                                      "batch_throughput.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
