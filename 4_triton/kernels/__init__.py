"""Our Triton kernels for every op of microgpt's training step, one file per op family.

Each file reads in the order of the Triton tutorials: a naive PyTorch reference (and what
its memory traffic is), the forward kernel, the backward kernel with its derivation above
it, the launcher, a `torch.autograd.Function`, and a benchmark.

Shapes: activations are (T, C) buffers whose T rows are padded to a power of two (the
padded rows hold finite filler and receive zero gradient); the number of real rows `n` is
read from device memory, so one compiled kernel, and one captured CUDA graph, serves every
document length.

Weights are views of one flat parameter buffer and their gradients views of one flat
gradient buffer. Each backward kernel *writes* its weight's gradient straight into that
buffer (every weight is used once per step, so there is nothing to add to) and hands
autograd `None` for it -- the "gradient accumulation fusion" of Megatron-LM -- so Adam can
update all 4,192 parameters in one launch with no copies.
"""

import sys


def triton_missing() -> str:
    """One line for a machine without Triton: why, and where each stage runs instead.
    (This package's kernel files import Triton; this module does not, so it can say so.)"""
    where = ("stage 4 runs on Linux, through Triton's CPU interpreter on any machine or compiled on an NVIDIA "
             "GPU (pip install -r requirements.txt installs Triton there)")
    if sys.platform == "darwin":
        return f"error: Triton has no macOS build, so stage 4 cannot run on this Mac; stages 1-3 run here, and {where}"
    if sys.platform == "win32":
        return ("error: stage 4 needs Triton, which is not installed; on Windows it is the triton-windows package: "
                "pip install triton-windows (stages 1-3 run without it)")
    return f"error: stage 4 needs Triton, which is not installed; stages 1-3 run without it, and {where}"


def run_on_its_own(name: str, check, bench, tolerance: float = 1e-5) -> int:
    """What a kernel file does when run as a program: `check(device)` compares its forward and
    backward with the PyTorch reference ({what: largest absolute difference}); on a GPU,
    `bench()` times it with triton.testing.do_bench. One line; exit 1 if a difference is too big."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    errors = check(device)
    where = f"compiled on {torch.cuda.get_device_name()}" if device == "cuda" else "through Triton's interpreter"
    ok = max(errors.values()) <= tolerance
    line = (f"{name}: {'matches' if ok else 'DIFFERS FROM'} PyTorch in float32 ({where}); largest |ours - PyTorch|: "
            + ", ".join(f"{what} {err:.1e}" for what, err in errors.items()) + f" (tolerance {tolerance:.0e})")
    if device == "cuda":
        times = bench()
        theirs = times.get("torch_us", times.get("torch_foreach_us"))
        line += f"; one call, launch included: ours {times['triton_us']:.1f} µs, PyTorch {theirs:.1f} µs"
    print(line)
    return 0 if ok else 1
