"""What every training program imports first: a program still loading its packages fails in
one line, not a traceback.

Three things go wrong before a program has started: it runs under a Python without the
project's packages (the system `python3` instead of `.venv/bin/python`), a package is there
but cannot load (a broken installation: a missing shared library), or Ctrl-C arrives during
`import torch`, which takes a while. Importing this module installs an exception hook
that says each in one line; every other error keeps Python's usual report.
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
    broken = package_that_failed(exc_type, tb)
    if broken:
        said = f"{exc_type.__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
        chosen = [name for name, value in os.environ.items()  # a folder the user's environment chose for a tool
                  if name.endswith(("_DIR", "_CACHE", "_HOME")) and name not in ("HOME", "PWD", "OLDPWD")
                  and len(value) > 1 and value in str(exc)]
        named = max(chosen, key=lambda name: len(os.environ[name]), default=None)
        if named:
            fix = (f"the environment variable {named} names {os.environ[named]}, which {broken} cannot use; set it to "
                   f"a folder that can be written, or unset it")
        else:
            fix = ("fix what it names; if the installation is broken, reinstall it: pip install --force-reinstall "
                   "-r requirements.txt")
        print(f"error: {Path(sys.argv[0]).name} cannot load {broken} ({said}); {fix}", file=sys.stderr, flush=True)
        return
    sys.__excepthook__(exc_type, exc, tb)


def package_that_failed(exc_type, tb) -> str | None:
    """The package of PACKAGES whose own import raised (a missing shared library, a version
    mismatch: an ImportError or OSError from inside its __init__), or None."""
    if not issubclass(exc_type, ImportError | OSError):
        return None
    while tb is not None:
        parts = Path(tb.tb_frame.f_code.co_filename).parts
        for name in PACKAGES:
            if name in parts[:-1] and parts[-1] == "__init__.py":
                return name
        tb = tb.tb_next
    return None


sys.excepthook = one_line_on_load
for stream in (sys.stdout, sys.stderr):  # a path or a name this terminal's encoding cannot show: escaped, not an error
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="backslashreplace")
