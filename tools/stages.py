"""A chapter's main.py as a module, for the code above the chapters that uses their own code:
tests, benchmarks, exercises, pictures. Stage folders start with a digit, so they are loaded
by path, once each, as `stage_<folder>`: whoever asks first, everyone gets the one module.

A chapter whose main.py imports a package of its own folder (4_triton's `kernels`) gets that
folder on the import path first, as it has when it runs as a program.
"""

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def folder(stage: str) -> Path:
    """The chapter's folder, put on the import path if it holds a package of its own."""
    path = REPO_ROOT / stage
    if not (path / "main.py").is_file():
        raise ValueError(f"no chapter {stage!r}: its main.py is not at {path / 'main.py'}")
    if any((sub / "__init__.py").is_file() for sub in path.iterdir()) and str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return path


def load(stage: str):
    """`<stage>/main.py` as the module `stage_<stage>`, loaded once."""
    name = f"stage_{stage}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, folder(stage) / "main.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
