"""What every exercise file imports first: the chapters' own code, and Triton's interpreter.

Importing this module puts the repository on the path (for `shared/` and the chapters) and
makes Triton run through its CPU interpreter, which the exercises always use, on any machine:
there every load and store of a kernel is checked against the tensor it points into
(`checker/bounds.py`), so a missing mask is a clear message instead of a crash. Run a stub on
its own (`python exercises/ch2/padding.py`) and its last lines try your function on a small
example with `show`.
"""

import os
import sys
import traceback
from pathlib import Path

EXERCISES = Path(__file__).resolve().parent
REPO_ROOT = EXERCISES.parent
for folder in (REPO_ROOT, REPO_ROOT / "4_triton"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
if "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"  # Triton reads it once, when first imported
    try:
        from checker import bounds

        bounds.install()
    except ImportError:  # no Triton here (macOS): chapters 1-3 need none
        pass

from shared.weights import spec_run  # noqa: E402, F401  (SPEC.md's run: tokenizer, config, docs, weights)
from tools.stages import load  # noqa: E402, F401  (the exercises' way to a chapter's main.py)


def show(function, *args, **kwargs):
    """Call your `function` on an example and print what it returned, for a stub run on its own:
    the call and its result, or why there is none (not written yet, out of bounds, an error on
    your line). `python exercises/check.py N.M` is the real check."""
    call = f"{function.__name__}({', '.join([*map(brief, args), *(f'{k}={brief(v)}' for k, v in kwargs.items())])})"
    try:
        result = function(*args, **kwargs)
    except NotImplementedError as err:
        print(f"{call}: not written yet ({err})")
        return None
    except Exception as err:  # noqa: BLE001  (your code may raise anything: say what, and on which line)
        print(f"{call}: {explain(err)}")
        return None
    print(f"{call} returned {brief(result, full=True)}")
    return result


def explain(error: BaseException) -> str:
    """'raised ValueError: ... (padding.py, line 12)': the error, unwrapped from Triton's
    interpreter, at the innermost line of an exercise file."""
    from checker.answer import STUB_MARK

    try:
        from checker.bounds import out_of_bounds

        oob = out_of_bounds(error)
    except ImportError:
        oob = None
    if oob is not None:
        return f"out of bounds: {oob}"
    while type(error).__name__ == "InterpreterError" and (error.__cause__ or error.__context__):
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()[-1] if str(error).strip() else ""
    if isinstance(error, AssertionError) and STUB_MARK.fullmatch(text):
        return f"not written yet (the kernel is still the stub: {text})"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve().is_relative_to(
        EXERCISES)]
    where = f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else ""
    return f"raised {type(error).__name__}: {text}{where}"


def brief(value, full: bool = False) -> str:
    """A value for printing: small arrays in full, large ones as their shape and dtype."""
    shape = getattr(value, "shape", None)
    if shape is not None and (not full or getattr(value, "size", None) is None or _numel(value) > 64):
        return f"<{type(value).__name__} of shape {tuple(shape)}, {value.dtype}>"
    if isinstance(value, tuple):
        return "(" + ", ".join(brief(v, full) for v in value) + ")"
    if isinstance(value, list) and len(value) > 8:
        return f"[{', '.join(brief(v, full) for v in value[:8])}, ... {len(value)} in all]"
    return repr(value)


def _numel(value) -> int:
    numel = getattr(value, "numel", None)
    return numel() if callable(numel) else int(getattr(value, "size", 0))
