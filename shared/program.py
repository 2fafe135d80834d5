"""What every training program imports first: a program still loading its packages fails in
one line, not a traceback.

Two things go wrong before a program has started: it runs under a Python without the
project's packages (the system `python3` instead of `.venv/bin/python`), or Ctrl-C arrives
during `import torch`, which takes a while. Importing this module installs an exception hook
that says either in one line; every other error keeps Python's usual report.
"""

import os
import sys
from pathlib import Path

PACKAGES = ("numpy", "torch", "matplotlib")  # (a missing Triton is said where Triton is chosen)


def one_line_on_load(exc_type, exc, tb):
    if issubclass(exc_type, KeyboardInterrupt):
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    if issubclass(exc_type, ModuleNotFoundError) and (exc.name or "").split(".")[0] in PACKAGES:
        print(f"error: {Path(sys.argv[0]).name} needs {exc.name.split('.')[0]}, which {sys.executable} does not "
              f"have; run it with the project's Python, .venv/bin/python (README.md, Quick start), or "
              f"pip install -r requirements.txt into this one", file=sys.stderr, flush=True)
        return
    sys.__excepthook__(exc_type, exc, tb)


sys.excepthook = one_line_on_load
for stream in (sys.stdout, sys.stderr):  # a path or a name this terminal's encoding cannot show: escaped, not an error
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="backslashreplace")
