"""On a CUDA GPU: how many kernels one training step launches in stage 3 and in stage 4,
and each stage-4 kernel against its naive PyTorch version.

    python benchmarks/gpu_profile.py --out benchmarks/results/gpu_profile.json

Launches are counted with torch.profiler (CUPTI) over ten steps of each stage's own training
loop, after ten unprofiled ones; stage 4 is profiled without its CUDA graph so every kernel
is a separate launch from Python, which is what the graph then replaces with one.
"""

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tools import stages  # noqa: E402

stages.folder("4_triton")
from kernels import backend  # noqa: E402

backend.choose()  # before torch's profiler, which imports Triton: compiled on a CUDA GPU, else the interpreter
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from shared import cli, runner, saving  # noqa: E402
from shared.environment import environment  # noqa: E402
from tools.stages import load  # noqa: E402


def kernels_per_step(stage, argv: list[str], steps: int = 10, rehearse: bool = False) -> dict:
    """GPU kernels per step of the stage's own training loop, by name: the profiler counts the
    kernels of a run of `steps` steps and of one of 2 x `steps`, and the difference over
    `steps` is one step's, with the set-up both runs share (weights, buffers, compiling) gone.
    (A rehearsal on a CPU counts the CPU's ops instead, to exercise the same code.)"""
    module = load(stage)
    counts = []
    kind = torch.autograd.DeviceType.CPU if rehearse else torch.autograd.DeviceType.CUDA
    for length in (steps, 2 * steps):
        run = runner.start(module.__file__, module.FLAGS, ["--steps", "1000", *argv], max_steps=length)
        with profile(activities=[ProfilerActivity.CPU if rehearse else ProfilerActivity.CUDA]) as prof:
            module.train(run)
            if not rehearse:
                torch.cuda.synchronize()
        names = {}
        for event in prof.events():
            if event.device_type == kind:
                names[event.name] = names.get(event.name, 0) + 1
        counts.append(names)
    per_name = {name: (counts[1].get(name, 0) - counts[0].get(name, 0)) / steps for name in sorted(counts[1])}
    kernels = {name: n for name, n in per_name.items() if n and not name.startswith(("Memcpy", "Memset"))}
    return {"per_step": sum(kernels.values()), "kernels": kernels,
            "copies": {name: n for name, n in per_name.items() if n and name not in kernels}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rehearse", action="store_true", help="on a CPU, through the interpreter, tiny")
    args = parser.parse_args()
    cli.guard_record_out(parser, args.out)  # before anything is computed
    steps = 2 if args.rehearse else 10
    report = {
        "stage3_eager": kernels_per_step("3_pytorch", ["--device", "cpu" if args.rehearse else "cuda"], steps,
                                         args.rehearse),
        "stage4_per_kernel": kernels_per_step("4_triton", ["--no-cuda-graph"], steps, args.rehearse),
        "kernel_bench_us": {},
        "rehearsal": args.rehearse,
        "env": environment("cpu" if args.rehearse else torch.cuda.get_device_name(),
                                   torch_cuda=torch.version.cuda),
    }
    from kernels import adam, attention, cross_entropy, embedding, linear, partials, rmsnorm
    for module in (embedding, rmsnorm, linear, attention, cross_entropy, adam, partials):
        if not args.rehearse:  # (micro-benchmarks time the GPU: nothing to rehearse)
            report["kernel_bench_us"][module.__name__.split(".")[-1]] = module.bench()
    saving.write_json_atomic(args.out, report)
    for key in ("stage3_eager", "stage4_per_kernel"):
        print(f"{key}: {report[key]['per_step']:.0f} {'ops' if args.rehearse else 'kernels'} per step")
    for name, row in report["kernel_bench_us"].items():
        print(name, {k: round(v, 2) for k, v in row.items()})


if __name__ == "__main__":
    main()
