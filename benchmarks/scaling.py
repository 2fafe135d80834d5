"""How step time grows with model size, per stage.

Runs each stage's own main.py (the same code a reader runs) for a few hundred steps at
each size and records the median step time after warm-up. One JSON file, one row per
(stage, size); the plots read it.

    python benchmarks/scaling.py --stages 2_numpy 3_pytorch --widths 16 32 64 128 256 \\
        --steps 200 --out 3_pytorch/width_sweep.json
    python benchmarks/scaling.py --stages 1_pure_python 2_numpy 3_pytorch --widths 16 \\
        --batch-sizes 1 4 16 64 256 1024 --max-batch 1_pure_python=4 --steps 50 \\
        --out benchmarks/results/batch-cpu-DATE.json

Every run's thread pools are pinned to one thread, as in benchmarks/run.py.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shared import cli, results, saving, schema  # noqa: E402
from shared.environment import environment  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def measure(stage: str, steps: int, n_embd: int, n_layer: int, batch_size: int, extra: list[str]) -> dict:
    """One short run of `stage` at one size and batch size; returns its summary numbers."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, str(REPO_ROOT / stage / "main.py"), "--steps", str(steps), "--samples", "0",
               "--n-embd", str(n_embd), "--n-layer", str(n_layer), "--batch-size", str(batch_size),
               "--out", str(out), *extra]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **ONE_THREAD})
        res = schema.load_results(out)
    summary = results.summarize(res)
    return {"stage": stage, "n_embd": n_embd, "n_layer": n_layer, "batch_size": batch_size,
            "num_params": res["num_params"], "steps": steps, "median_step_ms": summary["median_step_ms"],
            "names_per_s": summary["names_per_s"], "tokens_per_s": summary["tokens_per_s"],
            "device": summary["device"], "extra_args": extra}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["2_numpy", "3_pytorch"])
    parser.add_argument("--widths", nargs="+", type=int, default=[16, 32, 64, 128, 256])
    parser.add_argument("--layers", nargs="+", type=int, default=[1])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--max-batch", nargs="*", default=[], metavar="STAGE=B",
                        help="largest batch size for one stage, e.g. 1_pure_python=4 (its cost grows linearly)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stage-args", nargs="*", default=[], metavar="STAGE=ARGS",
                        help="extra flags for one stage, e.g. 3_pytorch='--device cuda'")
    args = parser.parse_args(argv)
    cli.guard_record_out(parser, args.out)  # before anything is computed
    extra = {k: v.split() for k, v in (item.split("=", 1) for item in args.stage_args)}
    max_batch = {k: int(v) for k, v in (item.split("=", 1) for item in args.max_batch)}
    rows = []
    for stage in args.stages:
        for n_layer in args.layers:
            for width in args.widths:
                for batch_size in args.batch_sizes:
                    if batch_size > max_batch.get(stage, batch_size):
                        continue
                    row = measure(stage, args.steps, width, n_layer, batch_size, extra.get(stage, []))
                    print(f"{stage:14s} n_layer {n_layer} n_embd {width:4d} ({row['num_params']:>9,} params) "
                          f"batch {batch_size:4d}: {row['median_step_ms']:8.3f} ms/step, "
                          f"{row['names_per_s']:10,.0f} names/s", flush=True)
                    rows.append(row)
    devices = ", ".join(sorted({row["device"] for row in rows}))
    saving.write_json_atomic(args.out, {"rows": rows, "env": environment(devices, threads_pinned=1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
