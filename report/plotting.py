"""Plots and tables the comparison notebooks share (matplotlib + numpy; not for stage 1 code).

Every notebook starts from `settings()`, reads results files with `load_runs`, and draws
with the helpers below, so the four chapters look alike and no notebook hand-rolls a plot.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from matplotlib import ticker

from shared.cli import SPEC_STEPS
from shared.results import LOSS_WINDOW, SETTLING_STEPS, summarize
from shared.schema import load_results

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOOTH_WINDOW = 50
FAST_ENV = "MICROGPT_NOTEBOOK_FAST"  # tests set this: a few-step rerun into a temp folder
OUT_ENV = "MICROGPT_NOTEBOOK_OUT"  # where a fast run writes its results and figures


FIGURES_ENV = "MICROGPT_WRITE_FIGURES"  # set by whoever regenerates the committed PNGs


def settings(stage_dir: str, rerun: bool, steps: int) -> tuple[bool, int, Path]:
    """(rerun, steps, output folder) for a notebook, honouring the tests' fast mode.

    Normally the notebook reads the committed results in its own folder; a rerun writes the
    reader's own `last_run.json` there (git ignores it). In fast mode
    (`MICROGPT_NOTEBOOK_FAST=1`) it retrains for 3 steps, samples 2 names instead of 20 (stage
    4's interpreter takes half a second a name), and writes everything under
    `MICROGPT_NOTEBOOK_OUT`. A reader's run of a notebook never changes a tracked file: the
    committed figures are written only with `MICROGPT_WRITE_FIGURES=1` and no rerun (`save`).
    """
    global _write_figures, _samples
    if os.environ.get(FAST_ENV) == "1":
        _write_figures, _samples = True, ["--samples", "2"]
        return True, 3, Path(os.environ[OUT_ENV])
    _write_figures, _samples = os.environ.get(FIGURES_ENV) == "1" and not rerun, []
    return rerun, steps, REPO_ROOT / stage_dir


_write_figures = False
_samples: list[str] = []  # the flags of a rerun's sampling: the program's own 20 names, 2 in fast mode


YOURS = "your run"  # a label that starts so is drawn in its own colour and style in every plot


def reader_run(stage_dir: str, rerun: bool) -> dict[str, Path]:
    """{label: path} of the reader's own last run of this stage (`<stage>/last_run.json`, what
    `main.py` writes without --out), to plot beside the committed runs; empty if there is none
    (or if the notebook's own rerun already is it)."""
    path = REPO_ROOT / stage_dir / "last_run.json"
    committed = os.environ.get(FIGURES_ENV) == "1"  # the committed figures never show a local run
    if rerun or committed or os.environ.get(FAST_ENV) == "1" or not path.exists():
        return {}
    return {f"{YOURS} (last_run.json)": path}


def load_reader_run(stage_dir: str, rerun: bool) -> dict[str, dict]:
    """The reader's own last run, loaded, or {} with one line saying why it is left out: a run cut
    short (Ctrl-C) or a file that is not a results file is never drawn, and never stops the notebook."""
    runs = {}
    for label, path in reader_run(stage_dir, rerun).items():
        try:
            res = load_results(path)
            problem = results_problem(res)
        except Exception as err:  # noqa: BLE001  (whatever is wrong with it, the committed runs are still drawn)
            problem = str(err)
        if problem:
            print(f"your {path.name} is left out of the plots: {problem}")
        else:
            runs[label] = res
    return runs


def results_problem(res) -> str | None:
    """Why a results file cannot be drawn, or None: not a results file, or a run cut short."""
    from shared.schema import validate

    problem = validate(res)
    if problem is None and res.get("partial"):
        problem = f"it was stopped after {len(res['losses'])} of its {res['config']['steps']} steps"
    return problem


CONFIG_FLAGS = ("batch_size", "n_layer", "n_embd", "n_head", "block_size", "seed", "dtype")


def config_flags(res: dict) -> list[str]:
    """The command-line flags that train another stage the way `res` was trained (its sizes, seed
    and dtype), so a comparison of losses compares like with like."""
    return [arg for key in CONFIG_FLAGS if key in res["config"]
            for arg in (f"--{key.replace('_', '-')}", str(res["config"][key]))]


def train_stage(stage_dir: str, out: Path, steps: int, *extra: str, schedule: int = SPEC_STEPS) -> Path:
    """Run a stage's main.py as a reader would, writing its results to `out`: the first `steps`
    steps of a `schedule`-step run (--stop-after), so that a short rerun is the beginning of
    the committed run, step for step, not a run of its own shorter schedule."""
    schedule = max(schedule, steps)  # (a rerun longer than SPEC.md's is a schedule of its own)
    stop = ["--stop-after", str(steps)] if steps < schedule else []
    cmd = [sys.executable, str(REPO_ROOT / stage_dir / "main.py"), "--steps", str(schedule), *stop,
           "--out", str(out), *_samples, *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def load_runs(paths: dict[str, Path]) -> dict[str, dict]:
    """{label: results} from {label: results-file path}."""
    return {label: load_results(path) for label, path in paths.items()}


def smooth(values, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Trailing moving average; the first points average over what exists so far."""
    values = np.asarray(values, dtype=float)
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumsum[1:] - cumsum[np.arange(1, len(values) + 1) - counts]) / counts


def plot_losses(ax, runs: dict[str, dict], window: int = SMOOTH_WINDOW) -> None:
    """Each run's per-step loss, faint, with its moving average on top (the reader's own run
    dashed, in black)."""
    for label, res in runs.items():
        color, style = style_of(label, res)
        steps = np.arange(1, len(res["losses"]) + 1)
        ax.plot(steps, res["losses"], color=color, alpha=0.2, lw=0.8)
        ax.plot(steps, smooth(res["losses"], window), color=color, lw=2, ls=style,
                label=f"{label} ({window}-step mean; {machine(res)})")
    ax.set(xlabel="step", ylabel="loss (one document)", title="Training loss")
    legend_below(ax)


def plot_loss_difference(ax, runs: dict[str, dict]) -> None:
    """|loss_b - loss_a| per step against the first run, on a log scale. Steps where the two
    losses are equal to the last bit have no place on a log axis: they are left out, and the
    legend says how many there are."""
    (label_a, base), *others = runs.items()
    for label, res in others:
        if res["config"].get("steps") != base["config"].get("steps"):
            continue  # another schedule: its losses are not comparable step by step
        color, style = style_of(label, res)
        n = min(len(base["losses"]), len(res["losses"]))
        diff = np.abs(np.subtract(res["losses"][:n], base["losses"][:n]))
        equal = int(np.sum(diff == 0))
        shown = np.where(diff > 0, diff, np.nan)
        note = f"; equal to the last bit at {equal} of {n} steps (not drawn)" if equal else ""
        ax.semilogy(np.arange(1, n + 1), shown, color=color, lw=1, ls=style, label=f"|{label} - {label_a}|{note}")
    ax.set(xlabel="step", ylabel="absolute loss difference", title="Loss difference per step")
    readable_log_axis(ax.yaxis)
    legend_below(ax, fontsize=8)


def plot_step_times(ax, runs: dict[str, dict], log: bool = True) -> None:
    """Wall time of every step, with each run's median after warm-up as a dashed line."""
    for label, res in runs.items():
        s = summarize(res)
        (color, style), median = style_of(label, res), s["median_step_ms"]
        ax.plot(np.arange(1, len(res["step_ms"]) + 1), res["step_ms"], color=color, lw=0.6, ls=style,
                alpha=0.7, label=f"{label}: median {median:.3g} ms, {s['names_per_s']:,.0f} names/s ({machine(res)})")
        ax.axhline(median, color=color, ls="--", lw=1)
    if log:
        ax.set_yscale("log")
        readable_log_axis(ax.yaxis)
    ax.set(xlabel="step", ylabel="ms per step", title="Step time")
    legend_below(ax)


def plot_step_time_hist(ax, runs: dict[str, dict]) -> None:
    """Distribution of step times after warm-up (log-spaced bins)."""
    all_ms = np.concatenate([res["step_ms"][SETTLING_STEPS:] or res["step_ms"] for res in runs.values()])
    bins = np.geomspace(all_ms.min(), all_ms.max(), 60) if all_ms.min() > 0 else 60
    for label, res in runs.items():
        color, _ = style_of(label, res)
        ax.hist(res["step_ms"][SETTLING_STEPS:] or res["step_ms"], bins=bins, color=color, alpha=0.6, label=label,
                histtype="stepfilled" if not label.startswith(YOURS) else "step", lw=1.5)
    if len(runs) > 1:
        ax.set_xscale("log")
    ax.set(xlabel="ms per step (after warm-up)", ylabel="steps", title="Step-time distribution")
    legend_below(ax)


def plot_speedup(ax, base_label: str, base: dict, label: str, res: dict) -> float:
    """Per-step ratio base_ms / ms. Both runs train on the same document at each step, so
    the ratio compares like with like; returns the ratio of the medians after warm-up."""
    n = min(len(base["step_ms"]), len(res["step_ms"]))
    ratio = np.divide(base["step_ms"][:n], res["step_ms"][:n])
    overall = summarize(base)["median_step_ms"] / summarize(res)["median_step_ms"]
    color = color_of(res)
    ax.plot(np.arange(1, n + 1), ratio, lw=0.6, alpha=0.6, color=color, label="per step")
    ax.plot(np.arange(1, n + 1), smooth(ratio), lw=2, color=color, label=f"{SMOOTH_WINDOW}-step mean")
    ax.axhline(overall, color="k", ls="--", lw=1, label=f"ratio of medians: {ratio_text(overall)}")
    ax.set(xlabel="step", ylabel=f"{base_label} time / {label} time", title=f"Speed-up of {label} over {base_label}")
    ax.set_yscale("log")
    readable_log_axis(ax.yaxis)
    legend_below(ax)
    return overall


def ratio_text(ratio: float) -> str:
    """A speed-up as people write it: 1,068x, 3.6x, 0.28x (never 0x, never 1.1e+03x)."""
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 1:
        return f"{ratio:.3g}x"
    return f"{ratio:.2g}x"


def readable_log_axis(axis) -> None:
    """A log axis that spans less than two decades gets labelled ticks at 1, 2 and 5 of each
    decade (matplotlib's default would label one tick, or none), and its ends are moved out to
    the ticks around the data, so the top and the bottom of the data are always labelled."""
    low, high = axis.get_view_interval()
    if not low > 0:
        return
    if high / low < 100:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())
        steps = (1.0, 2.0, 5.0)
    else:
        steps = (1.0,)
    ticks = sorted(m * 10.0**e for e in range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 2)
                   for m in steps)
    below = max([t for t in ticks if t <= low * 1.0001] or [low])
    above = min([t for t in ticks if t >= high / 1.0001] or [high])
    if axis is axis.axes.yaxis:
        axis.axes.set_ylim(below, above)
    else:
        axis.axes.set_xlim(below, above)


def legend_below(ax, ncol: int = 1, **kwargs) -> None:
    """The legend under the axes, where it covers neither the data nor the title."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, frameon=False, **kwargs)


PHASE_COLORS = ["#4c72b0", "#dd8452", "#55a868"]  # forward, backward, optimizer


def plot_phases(ax, runs: dict[str, dict]) -> None:
    """Share of forward / backward / optimizer in each run's step (medians after warm-up),
    one 100% bar per run, labelled with the milliseconds."""
    phases = [("forward_ms", "forward"), ("backward_ms", "backward"), ("optimizer_ms", "optimizer")]
    labels = [label for label, res in runs.items() if "forward_ms" in res]
    for i, label in enumerate(labels):
        res = runs[label]
        ms = [float(np.median(res[key][SETTLING_STEPS:] or res[key])) for key, _ in phases]
        left = 0.0
        for width_ms, (_, name), color in zip(ms, phases, PHASE_COLORS):
            width = width_ms / sum(ms)
            ax.barh(i, width, left=left, color=color, label=name if i == 0 else None)
            if width > 0.12:  # the number inside its segment
                ax.text(left + width / 2, i, f"{width_ms:.3g} ms", ha="center", va="center", fontsize=9, color="white")
            else:  # a thin segment: the number above it, in the segment's colour
                ax.text(left + width / 2, i + 0.45, f"{width_ms:.3g} ms", ha="center", va="bottom", fontsize=8,
                        color=color)
            left += width
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(0, 1)
    ax.set(xlabel="share of the step (median of each phase)", title="Where a step's time goes")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3)


Y_LABELS = {"median_step_ms": "median ms per step", "names_per_s": "names per second (at the median step)"}


def plot_scaling(ax, rows: list[dict], x: str = "n_embd", labels: dict[str, str] | None = None,
                 y: str = "median_step_ms") -> list[tuple]:
    """Median step time (or names per second) against model size or batch size (log-log), one
    line per stage and device, with the points where two lines cross marked. Returns the
    crossings as (x, label_a, label_b)."""
    lines: dict[str, list] = {}
    colors: dict[str, str] = {}
    for row in rows:
        key = (labels or {}).get(row["stage"], row["stage"]) + f" ({row['device']})"
        lines.setdefault(key, []).append((row[x], row[y]))
        graph = row["stage"] == "4_triton" and "--no-cuda-graph" not in row.get("extra_args", [])  # main.py's default
        colors[key] = stage_color(row["stage"], row["device"], "graph" if graph else None)
    for key, points in lines.items():
        xs, ms = zip(*sorted(points))
        ax.loglog(xs, ms, "o-", color=colors[key], label=key)
    integer_ticks(ax.xaxis, sorted({row[x] for row in rows}))
    readable_log_axis(ax.yaxis)
    crossings = []
    keys = list(lines)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            pa, pb = dict(lines[a]), dict(lines[b])
            xs = sorted(set(pa) & set(pb))
            for x0, x1 in zip(xs, xs[1:]):
                d0, d1 = np.log(pa[x0] / pb[x0]), np.log(pa[x1] / pb[x1])
                if d0 * d1 < 0:  # the lines swap order between x0 and x1: interpolate in log space
                    t = d0 / (d0 - d1)
                    xc = float(np.exp(np.log(x0) + t * (np.log(x1) - np.log(x0))))
                    yc = float(np.exp(np.log(pa[x0]) + t * (np.log(pa[x1]) - np.log(pa[x0]))))
                    ax.plot(xc, yc, "kx", ms=10, mew=2)
                    ax.annotate(f"{xc:.0f}", (xc, yc), textcoords="offset points", xytext=(4, -14), fontsize=8)
                    crossings.append((xc, a, b))
    ax.set(xlabel=x + ("  (x: where two lines cross, labelled with the " + x + ")" if crossings else ""),
           ylabel=Y_LABELS[y], title=f"{Y_LABELS[y].split(' (')[0].capitalize()} against {x}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False, fontsize=8)  # off the data
    return crossings


def integer_ticks(axis, values) -> None:
    """Ticks at exactly these counts (widths, layers), written as plain integers: no 2x10^0."""
    axis.set_major_locator(ticker.FixedLocator(values))
    axis.set_major_formatter(ticker.FixedFormatter([str(v) for v in values]))
    axis.set_minor_locator(ticker.NullLocator())


def samples_table(runs: dict[str, dict]) -> str:
    """Markdown table with each run's samples side by side."""
    rows = ["| # | " + " | ".join(f"{label}, after {len(res['losses'])} of {res['config']['steps']} steps"
                                 for label, res in runs.items()) + " |", "|---|" + "---|" * len(runs)]
    longest = max(len(res["samples"]) for res in runs.values())
    for i in range(longest):
        cells = [res["samples"][i] if i < len(res["samples"]) else "" for res in runs.values()]
        rows.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def summary_table(runs: dict[str, dict]) -> str:
    """Markdown table: parameters, names per step, median ms/step, names/s, total, final loss, device."""
    rows = ["| run | params | steps | names per step | median ms/step | names/s | total s | "
            f"mean loss, last {LOSS_WINDOW} | device |", "|---|---|---|---|---|---|---|---|---|"]
    for label, res in runs.items():
        s = summarize(res)
        device = s["device"] + (" (Triton interpreter)" if s["interpreter"] else "")
        short = f" (all {s['steps']} steps)" if s["steps"] < LOSS_WINDOW else ""
        rows.append(f"| {label} | {s['num_params']:,} | {s['steps']} | {s['batch_size']} | {s['median_step_ms']:.3f} | "
                    f"{s['names_per_s']:,.0f} | {s['total_s']:.2f} | {s['final_loss']:.4f}{short} | {device} |")
    return "\n".join(rows)


def machine_line(res: dict) -> str:
    """One line naming where a results file was produced."""
    env = res["env"]
    return (f"{res['stage']}: {env['device']} on {env['cpu']} ({env.get('cpu_count')} cores), "
            f"Python {env['python']}, run {env['date']}")


def save(fig, out_dir: Path, name: str) -> Path | None:
    """Write a figure where `settings` allows it (the tests' folder, or the committed PNG when
    MICROGPT_WRITE_FIGURES=1); a reader's run of a notebook only shows it."""
    if not _write_figures:
        return None
    path = Path(out_dir) / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


# One colour per stage and device in every plot of the repository, so a reader can follow
# a stage from chapter to chapter. Stage 4's GPU variants are shades of one colour.
STAGE_COLORS = {
    ("1_pure_python", "cpu"): "#1f77b4",  # blue
    ("2_numpy", "cpu"): "#ff7f0e",  # orange
    ("3_pytorch", "cpu"): "#2ca02c",  # green
    ("3_pytorch", "gpu"): "#17becf",  # cyan
    ("3_pytorch", "gpu", "compile"): "#0e7c86",  # dark cyan
    ("4_triton", "cpu"): "#d62728",  # red: the interpreter
    ("4_triton", "cpu", "step"): "#ff9896",  # light red: the one-kernel step in the interpreter
    ("4_triton", "gpu"): "#c5b0d5",  # light purple: the per-op kernels, one launch each
    ("4_triton", "gpu", "graph"): "#9467bd",  # purple: the per-op kernels as one CUDA graph
    ("4_triton", "gpu", "step"): "#6a3d9a",  # dark purple: one kernel per step
    ("4_triton", "gpu", "run"): "#3f007d",  # darkest purple: the whole run in one launch
    ("5_distributed", "cpu"): "#8c564b",  # brown: several processes
    ("5_distributed", "gpu"): "#c49c94",  # light brown
}


def stage_color(stage: str, device: str, variant: str | None = None) -> str:
    """The colour of a stage on a device ("cpu" or any GPU name), and of a variant of it."""
    kind = "cpu" if device == "cpu" else "gpu"
    return STAGE_COLORS.get((stage, kind, variant), STAGE_COLORS[(stage, kind)])


YOUR_COLOR = "#000000"  # the reader's own run: black, dashed, in every plot


def style_of(label: str, res: dict) -> tuple[str, str]:
    """(colour, line style) of a run: the stage's colour, solid; the reader's own run black, dashed."""
    return (YOUR_COLOR, "--") if label.startswith(YOURS) else (color_of(res), "-")


def machine(res: dict) -> str:
    """Where a run ran, short: 'AMD EPYC CPU', 'NVIDIA H100 80GB HBM3', with 'interpreter' where it was."""
    env = res["env"]
    where = f"{env.get('cpu', 'CPU')} CPU" if env["device"] == "cpu" else env["device"]
    return where + (", Triton interpreter" if env.get("interpreter") else "")


def plot_step_time_dots(ax, runs: dict[str, dict], base: str) -> None:
    """One dot per run at its median step time, on a log axis (where a bar's length would say
    nothing), each labelled right of the axes with the time and the ratio to `base`."""
    from matplotlib import transforms

    labels = list(runs)
    medians = [summarize(runs[label])["median_step_ms"] * 1000 for label in labels]
    base_us = summarize(runs[base])["median_step_ms"] * 1000
    for i, (label, us) in enumerate(zip(labels, medians)):
        color, _ = style_of(label, runs[label])
        ax.plot([us], [i], "o", ms=11, color=color, mec="black" if label.startswith(YOURS) else color)
        ax.axhline(i, color="#dddddd", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    beside = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for i, (label, us) in enumerate(zip(labels, medians)):
        ratio = "" if label == base else f", {ratio_text(base_us / us)} over {base}"
        time = f"{us:,.0f}" if us >= 100 else f"{us:.3g}"
        ax.text(1.02, i, f"{time} µs{ratio}", va="center", transform=beside, fontsize=9)
    ax.set_xlim(min(medians) / 1.5, max(medians) * 1.5)
    readable_log_axis(ax.xaxis)
    ax.set(xlabel="median µs per step (log scale: equal steps are equal ratios)")


def color_of(res: dict) -> str:
    """The colour of a run, from its results file."""
    env = res["env"]
    variant = env.get("fused") or ("graph" if env.get("cuda_graph") else "compile" if env.get("compile") else None)
    return stage_color(res["stage"], env["device"], variant)
