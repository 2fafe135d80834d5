"""Compile every kernel a training step launches, ahead of time, for real NVIDIA GPUs, on any machine.

The interpreter runs kernels with NumPy and accepts things a GPU compiler rejects (tl.dot
on tiles below 16, K < 8 for float32, a variable whose shape differs between branches, ...).
This script runs real training steps of stage 4 -- the per-op step at SPEC.md's width and
at a wider model, and the one-kernel step, each with one document and with a batch of 64,
and the one-kernel program's sampling forward --
with Triton's launch intercepted, so it records exactly the arguments, constexprs and
options the launchers pass, and nothing is re-derived here. Then it asks Triton for PTX and
a cubin of each distinct launch, on every core, and fails unless every kernel defined in
4_triton/ was compiled for every target (the per-op kernels at both widths).

    python tests/aot_compile.py             (every variant for every target in TARGETS: .ci/run runs this,
                                             as its own step)
    python tests/aot_compile.py --quick     (every variant for sm_90, and each kernel's first for
                                             the other targets: a third of the time)
    python tests/aot_compile.py 80 90       (every variant, for just these)
    python tests/aot_compile.py --plan      (what it would compile, checked, in seconds: the test suite runs this)

A kernel that fails to compile usually fails for a shape (one of its variants) or for a
target (its first variant already), rarely for one pair alone: the quick form catches both
kinds; the full one, in CI, leaves no pair out. (benchmarks/results/aot-compile-triton-3.6.0.log
is the full form's output under Triton 3.6.0, the GPU machine's version, for the kernels of
2026-12-01; nothing checks it against today's kernels.)
"""

import concurrent.futures
import functools
import multiprocessing
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tools import stages  # noqa: E402

stages.folder("4_triton")
from kernels import backend  # noqa: E402

backend.choose(interpret=False)  # compile, never interpret: no kernel runs here, each is compiled for a target
# isort: off
import main as stage4  # noqa: E402
import fused_step  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402
# isort: on

from shared.weights import GPTConfig, param_shapes  # noqa: E402

# The GPUs learners have, by compute capability: sm_75 Turing (T4, the free notebook GPU), sm_80
# Ampere (A100), sm_86 Ampere (RTX 30 series), sm_89 Ada (RTX 40 series, L4), sm_90 Hopper
# (H100, H200), sm_120 Blackwell (RTX 50 series).
TARGETS = (75, 80, 86, 89, 90, 120)
WIDTHS = (16, 64)  # SPEC.md's n_embd, and a wider model
BATCH_SIZES = (1, 64)  # microgpt's one document per step, and a batch
POINTER_TYPES = {torch.float32: "*fp32", torch.float64: "*fp64", torch.int32: "*i32", torch.int64: "*i64"}
OPTIONS = ("num_warps", "num_stages")


def record_launches(step) -> list[tuple]:
    """(kernel, signature, constexprs, options) of every launch `step()` makes; nothing runs."""
    launches = []

    def record(kernel, *args, grid, warmup, **kwargs):
        bound = dict(zip(kernel.arg_names, args)) | {k: v for k, v in kwargs.items() if k not in OPTIONS}
        constexprs = {p.name: bound[p.name] for p in kernel.params if p.is_constexpr}
        signature = {}
        for p in kernel.params:
            value = bound[p.name]
            if p.is_constexpr:
                signature[p.name] = "constexpr"
            elif isinstance(value, torch.Tensor):
                signature[p.name] = POINTER_TYPES[value.dtype]
            else:
                signature[p.name] = "fp32" if isinstance(value, float) else "i32"
        options = {k: v for k, v in kwargs.items() if k in OPTIONS}
        launches.append((kernel, signature, constexprs, options))

    original, JITFunction.run = JITFunction.run, record
    try:
        step()
    finally:
        JITFunction.run = original
    return launches


def model_launches(n_embd: int, batch_size: int) -> list[tuple]:
    """Every launch of one per-op training step (forward, backward, Adam) at width n_embd on
    batch_size documents, and of the one-kernel step where it implements the width: one
    program for one document; for a batch, several programs of 1 and of 4 documents a tile."""
    config = GPTConfig(n_embd=n_embd)
    state = {name: [[0.0] * cols for _ in range(rows)] for name, (rows, cols) in param_shapes(config)}
    model = stage4.GPT(config, state, torch.float32, "cpu")
    step = stage4.TrainStep(model, num_steps=10, cuda_graph=False, batch_size=batch_size)
    step.load([[26, 1, 2, 26]] * batch_size, 0)
    launches = record_launches(step.launch)
    if n_embd == 16:  # the one-kernel step unrolls the whole model: SPEC.md's width only
        for programs, docs_per_tile in ([(1, 1)] if batch_size == 1 else [(8, 1), (8, 4)]):
            trainer = fused_step.FusedTrainer(model.params.flat.data, config, 2, batch_size, programs, docs_per_tile)
            trainer.load_documents([[26, 1, 2, 26]] * 2)
            launches += record_launches(functools.partial(trainer.launch, 0, 2))
        launches += record_launches(functools.partial(trainer.logits, [26, 1, 2]))  # sampling's forward
    return launches


def distinct(launches: list[tuple]) -> list[tuple]:
    seen, out = set(), []
    for kernel, signature, constexprs, options in launches:
        key = (kernel.fn.__name__, tuple(signature.items()), tuple(constexprs.items()), tuple(options.items()))
        if key not in seen:
            seen.add(key)
            out.append((kernel, signature, constexprs, options))
    return out


def jobs(capabilities: list[int], quick: bool) -> list[tuple]:
    """(width, launch, target) to compile: every variant for every target, or in the quick form
    every variant for sm_90 and each kernel's first variant for the rest."""
    out, first = [], set()
    for width in WIDTHS:
        launches = [launch for batch_size in BATCH_SIZES for launch in model_launches(width, batch_size)]
        for launch in distinct(launches):
            name = launch[0].fn.__name__
            for cap in capabilities:
                if not quick or cap == 90 or name not in first:
                    out.append((width, launch, cap))
            first.add(name)
    return out


def defined_kernels(folder: Path) -> set[str]:
    """Every @triton.jit function named *_kernel in the files under `folder`: what the launches must cover."""
    import ast

    return {node.name for path in sorted(folder.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_kernel") and node.decorator_list}


def missing(planned: list[tuple], capabilities: list[int], quick: bool) -> list[str]:
    """What `planned` leaves out, one line each: a kernel not compiled for a target, or a per-op
    kernel not compiled at the wider width (for sm_90 in the quick form, for every target otherwise)."""
    every, per_op = defined_kernels(REPO_ROOT / "4_triton"), defined_kernels(REPO_ROOT / "4_triton" / "kernels")
    lines = []
    for cap in capabilities:
        names = {launch[0].fn.__name__ for _, launch, target in planned if target == cap}
        lines += [f"sm_{cap}: {name} is never compiled" for name in sorted(every - names)]
        if not quick or cap == 90:
            wide = {launch[0].fn.__name__ for width, launch, target in planned if target == cap and width > WIDTHS[0]}
            lines += [f"sm_{cap}: {name} is never compiled at C={WIDTHS[-1]}" for name in sorted(per_op - wide)]
    return lines


_JOBS: list[tuple] = []  # filled before the workers fork, so each inherits the kernels


def describe(job: tuple) -> str:
    """'sm_90 C=16 linear_fwd_kernel(BLOCK_M=16, ...)': a job's target, width, kernel and constexprs."""
    width, (kernel, _, constexprs, _), cap = job
    return f"sm_{cap} C={width} {kernel.fn.__name__}({', '.join(f'{k}={v}' for k, v in constexprs.items())})"


def compile_one(index: int) -> str:
    width, (kernel, signature, constexprs, options), cap = _JOBS[index]
    src = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    compiled = triton.compile(src, target=GPUTarget("cuda", cap, 32), options=options)
    assert compiled.asm["cubin"], kernel.fn.__name__
    return f"ok {describe(_JOBS[index])} ({len(compiled.asm['cubin'])} bytes of cubin)"


def compile_all() -> list[str]:
    """Every job in _JOBS compiled, on every core; a job that fails to compile raises here."""
    workers = min(os.cpu_count() or 1, len(_JOBS))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(compile_one, range(len(_JOBS))))


if __name__ == "__main__":
    quick, plan = "--quick" in sys.argv, "--plan" in sys.argv
    targets = [int(c) for c in sys.argv[1:] if not c.startswith("--")] or list(TARGETS)
    _JOBS[:] = jobs(targets, quick)
    gaps = missing(_JOBS, targets, quick)
    if gaps:
        sys.exit("the launches recorded leave kernels uncompiled:\n" + "\n".join(gaps))
    for line in [f"plan {describe(job)}" for job in _JOBS] if plan else compile_all():
        print(line, flush=True)
