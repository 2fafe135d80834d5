"""Where a run allocates and computes: the CPU, or a device PyTorch drives.

A stage names the function that picks its device (shared/cli.py's `Flags.device`); the
runner calls it with the parsed flags and gets a `Device`: the device object the stage's
engine uses (the string "cpu" for plain Python and NumPy, a torch.device for PyTorch), its
name for the banner and the results file, facts for the results file's `env`, and a remark
to print before the first step, if any.

On a GPU, Python only queues work and runs ahead of it: a step's time is taken after
`sync()`, and its phases (forward, backward, optimizer) are not timed at all, since their wall
time would measure the queueing (`measures_phases`).
"""

from dataclasses import dataclass, field

from shared.errors import UserError


@dataclass(frozen=True)
class Device:
    device: object  # what the stage's engine takes: "cpu", or a torch.device
    name: str  # for people and results files: "cpu", "NVIDIA H100 80GB HBM3", "mps"
    facts: dict = field(default_factory=dict)  # for the results file's env: threads, interpreter, ...
    remark: str | None = None  # one line before the first step, e.g. what the timings measure

    @property
    def kind(self) -> str:
        return getattr(self.device, "type", self.device)

    @property
    def measures_phases(self) -> bool:
        return self.kind == "cpu"

    def sync(self) -> None:
        """Wait until the device has done the work queued so far."""
        if self.kind == "cuda":
            import torch

            torch.cuda.synchronize()


def cpu(args) -> Device:
    """Plain Python and NumPy: the CPU, one thread of Python."""
    return Device("cpu", "cpu")


def torch_device(args) -> Device:
    """PyTorch's devices, from --device (cpu, cuda, mps or auto) and --threads."""
    import torch

    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name; use cpu, cuda, mps or auto") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise UserError(f"--device {name} is not available on this machine; use --device cpu or auto")
    if device.type == "mps" and args.dtype == "float64":
        raise UserError("--dtype float64 is not supported on mps; use --dtype float32 or --device cpu")
    torch.set_num_threads(args.threads)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return Device(device, label, {"threads": torch.get_num_threads()})

