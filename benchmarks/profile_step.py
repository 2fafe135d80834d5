"""What PyTorch does in one training step of stage 3 on a CPU, op by op, measured.

    python benchmarks/profile_step.py                 # writes 3_pytorch/profile_cpu.json and profile.png
    python benchmarks/profile_step.py --out DIR       # ... into DIR instead

Three measurements, in one process, on stage 3's own training loop (shared/runner.py, one
thread, float32, SPEC.md's model):

1. Per op: torch.profiler counts every op the loop calls and the CPU time spent inside it
   (its "self" time, without the ops it calls), over a run of N steps and of 2N steps; the
   difference over N is one step's, with start-up costs (building the model, first calls)
   gone. Ops are grouped by what they are: matmuls, attention, norm and loss, Adam, tensor
   bookkeeping (views, copies, allocation), and the autograd engine's own nodes.
2. The arithmetic: torch.utils.flop_counter counts the floating-point operations of the same
   steps (matmuls and attention, which are nearly all of them).
3. What that arithmetic costs at this CPU's speed: a 512 x 512 float32 matmul, timed on the
   same thread, gives FLOP/s; the step's FLOPs divided by it is the time the arithmetic would
   take if nothing else ran.

The gap between (3) and the measured step is overhead: dispatching each op, recording
autograd nodes, allocating tensors, the Python of the loop itself.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from shared import cli, results, runner, saving, schema  # noqa: E402
from shared.environment import environment  # noqa: E402
from tools import stages  # noqa: E402

# isort: split
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

GROUPS = [  # (group, words in an op's name), first match wins
    ("autograd engine (backward nodes)", ("Backward", "AccumulateGrad", "autograd::engine")),
    ("Adam and its schedule", ("adam", "Optimizer", "lr_scheduler", "zero_grad")),
    ("matmul", ("mm", "matmul", "linear", "addmm", "bmm")),
    ("attention", ("attention", "sdpa", "_scaled_dot")),
    ("rmsnorm and cross-entropy", ("rms_norm", "norm", "nll", "log_softmax", "cross_entropy", "embedding")),
    ("tensor bookkeeping (views, copies, allocation)", (
        "view", "reshape", "permute", "transpose", "slice", "select", "empty", "copy", "to", "as_strided",
        "detach", "expand", "t", "flatten", "unsqueeze", "zeros", "ones", "fill", "tensor", "lift", "alias",
        "_unsafe", "clone", "contiguous", "split", "chunk", "stack", "cat", "item", "_local_scalar")),
]


def group_of(name: str) -> str:
    short = name.split("::")[-1]
    for group, words in GROUPS:
        if any(w in name for w in words[:3]) if group.startswith("autograd") else any(
                short == w or short.startswith(w + "_") or w in short for w in words):
            return group
    return "other ops (ReLU, add, ...)"


def load_stage3():
    return stages.load("3_pytorch")


def self_times(stage3, steps: int) -> tuple[dict, dict, float]:
    """({op: self CPU µs}, {op: calls}, wall seconds) of a run of `steps` steps, profiled."""
    run = runner.start(stage3.__file__, stage3.FLAGS, ["--device", "cpu", "--samples", "0"], max_steps=steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        stage3.train(run)
        wall = time.perf_counter() - started
    times, calls = {}, {}
    for event in prof.key_averages():
        times[event.key] = event.self_cpu_time_total
        calls[event.key] = event.count
    return times, calls, wall


def matmul_flop_per_s(n: int = 512, repeats: int = 20) -> float:
    """This CPU's arithmetic speed on the threads torch uses now: FLOP/s of an n x n float32
    matmul, the operation a CPU runs closest to its peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="N: runs of N and 2N steps are profiled")
    parser.add_argument("--out", default=str(REPO_ROOT / "3_pytorch"), help="folder for profile_cpu.json and png")
    parser.add_argument("--redraw", action="store_true", help="only draw profile.png again from profile_cpu.json")
    args = parser.parse_args(argv)
    if args.redraw:
        draw(schema.load_results(Path(args.out) / "profile_cpu.json", check=False), Path(args.out) / "profile.png")
        return 0
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out} is a file, not a folder: it names the folder for profile_cpu.json and its png")
    cli.guard_record_out(parser, str(Path(args.out) / "profile_cpu.json"))  # checked before profiling: a folder
    torch.set_num_threads(1)
    stage3 = load_stage3()
    n = args.steps
    short, long = self_times(stage3, n), self_times(stage3, 2 * n)
    per_op = {name: {"self_us": (long[0].get(name, 0) - short[0].get(name, 0)) / n,
                     "calls": (long[1].get(name, 0) - short[1].get(name, 0)) / n}
              for name in long[0]}
    per_op = {name: row for name, row in per_op.items() if row["calls"] > 0}
    for name, row in per_op.items():
        row["group"] = group_of(name)
    groups = {}
    for row in per_op.values():
        groups[row["group"]] = groups.get(row["group"], 0.0) + row["self_us"]

    run = runner.start(stage3.__file__, stage3.FLAGS, ["--device", "cpu", "--samples", "0"], max_steps=n)
    with FlopCounterMode(display=False) as counter:
        stage3.train(run)
    flops_per_step = counter.get_total_flops() / n
    unprofiled = runner.start(stage3.__file__, stage3.FLAGS, ["--device", "cpu", "--samples", "0"], max_steps=n)
    stage3.train(unprofiled)
    step_us = statistics.median(unprofiled.record.step_ms[results.SETTLING_STEPS:]) * 1000

    matmul_flops = matmul_flop_per_s()

    report = {
        "stage": "3_pytorch", "steps_profiled": [n, 2 * n], "ops_per_step": per_op, "groups_us_per_step": groups,
        "profiled_us_per_step": (long[2] - short[2]) / n * 1e6, "median_step_us_unprofiled": step_us,
        "flops_per_step": flops_per_step, "cpu_matmul_flop_per_s": matmul_flops,
        "arithmetic_us_at_matmul_speed": flops_per_step / matmul_flops * 1e6,
        "env": environment("cpu", threads=torch.get_num_threads()),
    }
    out = Path(args.out)
    saving.write_json_atomic(out / "profile_cpu.json", report)
    draw(report, out / "profile.png")
    calls = sum(row["calls"] for row in per_op.values())
    print(f"{calls:.0f} op calls per step; step {step_us:.0f} µs unprofiled; arithmetic "
          f"{flops_per_step:,.0f} FLOPs = {report['arithmetic_us_at_matmul_speed']:.2f} µs at "
          f"{matmul_flops / 1e9:.1f} GFLOP/s -> {out / 'profile_cpu.json'}")
    return 0


def step_parts(report: dict) -> list[tuple[str, float]]:
    """The profiled step's time, whole: each group of ops' self time, largest first, and what
    lies between the ops (Python, the training loop, the profiler's own records), so the parts
    add up to the one total every figure and table quotes."""
    groups = sorted(report["groups_us_per_step"].items(), key=lambda kv: -kv[1])
    between = report["profiled_us_per_step"] - sum(us for _, us in groups)
    return [*groups, ("between the ops (Python, the loop, the profiler)", between)]


def draw(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    top = sorted(report["ops_per_step"].items(), key=lambda kv: -kv[1]["self_us"])[:16][::-1]
    axes[0].barh([f"{name}  (x{row['calls']:.0f})" for name, row in top], [row["self_us"] for _, row in top],
                 color="#2ca02c")
    axes[0].set(xlabel="µs per step inside the op itself (self CPU time)",
                title="The 16 costliest ops of one step (calls per step in brackets)")
    axes[0].tick_params(axis="y", labelsize=8)
    step = report["profiled_us_per_step"]
    left = 0.0
    colors = plt.get_cmap("tab10")
    for i, (group, us) in enumerate(step_parts(report)):
        color = "#bbbbbb" if group.startswith("between") else colors(i)
        axes[1].barh(1, us, left=left, color=color, label=f"{group}: {us:.0f} µs ({us / step:.0%})")
        left += us
    unprofiled = report["median_step_us_unprofiled"]
    axes[1].axvline(unprofiled, color="k", ls="--", lw=1)
    axes[1].text(unprofiled, 1.45, f"the same step without \nthe profiler: {unprofiled:.0f} µs ", fontsize=8,
                 va="bottom", ha="right")
    arithmetic = report["arithmetic_us_at_matmul_speed"]
    axes[1].barh(0, arithmetic, color="k")
    axes[1].text(arithmetic, 0, f"  {arithmetic:.2f} µs: the step's {report['flops_per_step']:,.0f} FLOPs at this "
                 f"CPU's matmul speed", va="center", fontsize=8)
    axes[1].set_yticks([0, 1], ["arithmetic\n(if nothing else ran)", "one profiled step"])
    axes[1].set_ylim(-0.6, 2.1)
    axes[1].set(xlabel="µs per step", title=f"Where one profiled step's {step:.0f} µs go")
    axes[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1)
    fig.suptitle(f"Stage 3 on {report['env']['cpu']}, one thread, torch {report['env']['torch']}", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
