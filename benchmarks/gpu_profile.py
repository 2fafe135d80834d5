"""On a CUDA GPU: how many kernels one training step launches in stage 3 and in stage 4,
and each stage-4 kernel against its naive PyTorch version.

    python benchmarks/gpu_profile.py --out benchmarks/results/gpu_profile.json

Launches are counted with torch.profiler (CUPTI) over a few steps after warm-up; stage 4
is profiled without its CUDA graph so every kernel is a separate launch from Python, which
is what the graph then replaces with one.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from shared import dataset, results  # noqa: E402
from shared.tokenizer import Tokenizer  # noqa: E402
from shared.weights import GPTConfig, init_run  # noqa: E402


def load(stage):
    spec = importlib.util.spec_from_file_location(f"stage_{stage}", REPO_ROOT / stage / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def kernels_per_step(step, steps=5) -> dict:
    """Run `step(i)` a few times under the profiler; count GPU kernels per step, by name."""
    for i in range(5):
        step(i)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(5, 5 + steps):
            step(i)
        torch.cuda.synchronize()
    names = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            names[event.name] = names.get(event.name, 0) + 1
    return {"per_step": sum(names.values()) / steps, "kernels": {k: v / steps for k, v in sorted(names.items())}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    stage3, stage4 = load("3_pytorch"), load("4_triton")
    docs = dataset.load_docs(dataset.resolve_data_path())
    tokenizer = Tokenizer.from_docs(docs)
    config = GPTConfig(vocab_size=tokenizer.vocab_size)
    docs, state, _ = init_run(docs, config, 42)
    cuda = torch.device("cuda")

    model3 = stage3.load_weights(stage3.GPT(config), state).to(cuda)
    optimizer, schedule = stage3.make_optimizer(model3, 1000, cuda)

    def step3(i):
        _, loss = model3(*stage3.batch_tensors([tokenizer.encode_doc(docs[i])], config.block_size, cuda))
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step4 = stage4.TrainStep(stage4.GPT(config, state, device=cuda), 1000, cuda_graph=False)
    report = {
        "stage3_eager": kernels_per_step(step3),
        "stage4_per_kernel": kernels_per_step(lambda i: step4(tokenizer.encode_doc(docs[i]), i)),
        "kernel_bench_us": {},
        "env": results.environment(torch.cuda.get_device_name(), torch_cuda=torch.version.cuda),
    }
    from kernels import adam, attention, cross_entropy, embedding, linear, rmsnorm
    for module in (embedding, rmsnorm, linear, attention, cross_entropy, adam):
        report["kernel_bench_us"][module.__name__.split(".")[-1]] = module.bench()
    results.write_json_atomic(args.out, report)
    for key in ("stage3_eager", "stage4_per_kernel"):
        print(f"{key}: {report[key]['per_step']:.0f} kernels per step")
    for name, row in report["kernel_bench_us"].items():
        print(name, {k: round(v, 2) for k, v in row.items()})


if __name__ == "__main__":
    main()
