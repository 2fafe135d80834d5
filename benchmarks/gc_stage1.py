"""Where stage 1's step time goes besides its nodes: Python's garbage collector.

    python benchmarks/gc_stage1.py --out benchmarks/results/gc-stage1-<date>.json   (the machine is in its env)

Stage 1's step makes tens of thousands of `Value` objects. Python frees each one by reference
counting the moment its step is done with it; but its cyclic garbage collector, which looks for
reference cycles, also runs whenever enough new objects have been made, and a full collection
(generation 2) walks every object alive. This runs stage 1's own `train` twice on the same
steps -- with the collector as Python sets it, then with `gc.disable()` -- and records, for
every step, its time, its node count, the collector's time inside it and how many full
collections it ran. The two humps of chapter 1's step-time histogram are steps with one full
collection and steps with two. (A Value graph has no reference cycles, so disabling the
collector frees nothing less; stage 1 keeps Python's default, the way its reader runs it.)
"""

import argparse
import contextlib
import gc
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shared import cli, results, runner, saving  # noqa: E402
from shared.environment import environment  # noqa: E402
from tools import stages  # noqa: E402


def measure(steps: int, collector: bool) -> dict:
    """Per-step series of stage 1's own training loop, with the collector on or off."""
    stage1 = stages.load("1_pure_python")
    clock = {"started": 0.0, "gc_s": 0.0, "full": 0}

    def watch(phase, info):
        if phase == "start":
            clock["started"] = time.perf_counter()
        else:
            clock["gc_s"] += time.perf_counter() - clock["started"]
            clock["full"] += info["generation"] == 2

    with tempfile.TemporaryDirectory() as folder:  # (nothing is written: the run is read from memory)
        run = runner.start(stage1.__file__, stage1.FLAGS, ["--steps", "1000", "--samples", "0", "--out",
                                                           str(Path(folder) / "r.json")], max_steps=steps)
    gc_ms, full = [], []
    log = run.end_step

    def log_with_gc(loss, **series):  # the step ends: what the collector did inside it
        gc_ms.append(clock["gc_s"] * 1e3)
        full.append(clock["full"])
        clock["gc_s"], clock["full"] = 0.0, 0
        log(loss, **series)

    run.end_step = log_with_gc
    gc.callbacks.append(watch)
    if not collector:
        gc.disable()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            stage1.train(run)
    finally:
        gc.enable()
        gc.callbacks.remove(watch)
    return {"collector": collector, "step_ms": run.record.step_ms, "graph_nodes": run.record.series["graph_nodes"],
            "doc_len": run.record.series["doc_len"], "gc_ms": gc_ms, "full_collections": full,
            "losses": run.losses, "gc_threshold": list(gc.get_threshold())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    cli.guard_record_out(parser, args.out)  # before anything is computed
    report = {"runs": [measure(args.steps, True), measure(args.steps, False)],
              "env": environment("cpu")}
    saving.write_json_atomic(args.out, report)
    for run in report["runs"]:
        ms = sorted(run["step_ms"][results.SETTLING_STEPS:])
        print(f"collector {'on ' if run['collector'] else 'off'}: median {ms[len(ms) // 2]:.0f} ms per step, "
              f"collector {sum(run['gc_ms']) / sum(run['step_ms']):.0%} of the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
