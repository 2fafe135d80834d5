"""Where chapter 4's kernels run: compiled for a CUDA GPU, or through Triton's CPU interpreter.

Triton reads TRITON_INTERPRET when it loads (its own library functions are defined then) and
again each time a kernel is defined, so the choice must be made before anything imports
Triton -- and PyTorch's compiler and profiler import it too. `choose()` makes it for chapter
4's programs and kernel files (through this package), the benchmarks and the tests, each of
which calls it before its other imports. It decides once per process:

- TRITON_INTERPRET=1 or 0 in the environment, if set: the user's choice;
- else compiled where PyTorch sees a CUDA GPU, and the interpreter everywhere else.

The exercises make their own choice before any of this loads: exercises/chapters.py sets
TRITON_INTERPRET=1, so every kernel a learner writes runs in the interpreter, where each access
is bounds-checked; `choose()` then reads it as the user's.

`device(args)` is what the runner asks stage 4 for: the device a run allocates on, how it is
named in the results file, and the one-line errors for a choice that cannot work.
"""

import os
import sys

_decided: bool | None = None


def choose(interpret: bool | None = None, inherited: bool = True) -> bool:
    """Decide, once, whether the kernels run in the interpreter, and return the decision.
    `interpret` forces it (the exercises always interpret, so every access is bounds-checked).
    `inherited=False` keeps the choice to this process: the programs it starts (the tests'
    subprocesses) then choose for themselves, as they do when a learner runs them."""
    global _decided
    if _decided is not None:
        if interpret is not None and interpret != _decided:
            raise RuntimeError(f"Triton already runs {'in its interpreter' if _decided else 'compiled'} in this "
                               f"process; choose() must come before any kernel is defined")
        return _decided
    if not triton_installed():
        sys.exit(triton_missing())
    requested = os.environ.get("TRITON_INTERPRET", "")
    if interpret is None:
        interpret = requested == "1" if requested in ("0", "1") else not cuda_available()
    if interpret and sys.modules.get("triton") is not None and requested != "1":
        raise RuntimeError("Triton was imported before kernels.backend.choose() picked its interpreter, so its "
                           "library was set up compiled; call choose() first, before importing torch's compiler "
                           "or profiler, or Triton")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    _decided = interpret
    if not inherited:
        import triton

        triton.knobs.runtime.interpret = interpret  # Triton's own record of the choice, for this process
        del os.environ["TRITON_INTERPRET"]
    return interpret


def cuda_available() -> bool:
    import torch  # (PyTorch does not import Triton: only its compiler and profiler do)

    return torch.cuda.is_available()


def triton_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("triton") is not None
    except ValueError:  # sys.modules["triton"] is None: made unimportable
        return False


def triton_missing() -> str:
    """One line for a machine without Triton: why, and where each stage runs instead."""
    where = ("stage 4 runs on Linux, through Triton's CPU interpreter on any machine or compiled on an NVIDIA "
             "GPU (pip install -r requirements.txt installs Triton there)")
    if sys.platform == "darwin":
        return f"error: Triton has no macOS build, so stage 4 cannot run on this Mac; stages 1-3 run here, and {where}"
    if sys.platform == "win32":
        return ("error: stage 4 needs Triton, which is not installed; on Windows it is the triton-windows package: "
                "pip install triton-windows (stages 1-3 run without it)")
    return f"error: stage 4 needs Triton, which is not installed; stages 1-3 run without it, and {where}"


def device(args):
    """Where a run of stage 4 allocates: the CUDA GPU its kernels are compiled for, or the CPU
    whose interpreter runs them. The one-line errors: TRITON_INTERPRET=0 without a GPU, and
    float64 on a GPU (the compiled kernels are float32; the interpreter takes either)."""
    import torch

    from shared.devices import Device
    from shared.errors import UserError

    interpret = choose()
    if not interpret and not torch.cuda.is_available():
        raise UserError("TRITON_INTERPRET=0 asks for compiled kernels, and this machine has no CUDA GPU; "
                        "unset it (or set TRITON_INTERPRET=1) to run through Triton's CPU interpreter")
    if args.dtype == "float64" and not interpret:
        raise UserError("--dtype float64 runs only through the interpreter; use float32 on a GPU "
                        "or set TRITON_INTERPRET=1")
    if interpret:
        return Device(torch.device("cpu"), "cpu", {"interpreter": True, "threads": torch.get_num_threads()},
                      remark="no CUDA GPU: every kernel runs in Triton's CPU interpreter (NumPy emulation) -- "
                             "right numbers, interpreter speed; the timings below measure the interpreter")
    return Device(torch.device("cuda"), torch.cuda.get_device_name(), {"interpreter": False,
                                                                      "threads": torch.get_num_threads()})
