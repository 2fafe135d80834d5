"""Where a run happened, for a results file's `env` (SPEC.md): versions, device, CPU, date.

Versions are read from the installed packages' metadata, not by importing them, so a
program that uses no PyTorch (stage 1) imports none.
"""

import datetime
import importlib.metadata
import os
import platform
from pathlib import Path


def environment(device: str = "cpu", interpreter: bool = False, **extra) -> dict:
    """Where a run happened: versions, device, CPU, date (SPEC.md `env`); `extra` adds facts."""
    env = {
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "torch": package_version("torch"),
        "triton": package_version("triton"),
        "device": device,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "interpreter": interpreter,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    env.update(extra)
    return env


def package_version(name: str) -> str | None:
    """Installed version of `name`, without importing it (a program that uses none imports none)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
