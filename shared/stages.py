"""A stage's main.py as a module, for the tools that use the chapters' own code (tests,
exercises, pictures, profiles). Stage folders start with a digit, so they are imported by
path, once each, as `stage_<folder>`: whoever asks first, everyone gets the one module."""

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def load(stage: str):
    name = f"stage_{stage}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / stage / "main.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
