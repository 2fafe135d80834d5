"""What every exercise file imports first: the chapters' own code, and Triton's interpreter.

Importing this module puts the repository on the path (for `shared/` and the chapters) and
makes Triton run through its CPU interpreter, which the exercises always use, on any machine:
there every load and store of a kernel is checked against the tensor it points into
(`checker/bounds.py`, installed when Triton loads; chapters 1 and 2 never load it), so a
missing mask is a clear message instead of a crash. Run a stub on
its own (`python exercises/ch2/padding.py`) and its last lines try your function on a small
example with `show`.
"""

import importlib.abc
import importlib.util
import os
import sys
import traceback
from pathlib import Path

EXERCISES = Path(__file__).resolve().parent
REPO_ROOT = EXERCISES.parent
for folder in (REPO_ROOT, REPO_ROOT / "4_triton"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


class _BoundsCheckedTriton(importlib.abc.MetaPathFinder):
    """Installs checker/bounds.py the moment Triton has loaded, so that chapters 1-3, which
    never load it, do not pay for it (Triton loads PyTorch)."""

    busy = False

    def find_spec(self, name, path=None, target=None):
        if name != "triton" or self.busy:
            return None
        self.busy = True  # (finding Triton's own spec asks this finder again)
        try:
            spec = importlib.util.find_spec("triton")
        finally:
            self.busy = False
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):  # a spec may be found without being loaded (torch asks whether Triton is there)
                load(module)
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                if "checker.bounds" not in sys.modules:  # (else the checker loads it, and installs what it needs)
                    from checker import bounds

                    bounds.install()

            spec.loader.exec_module = exec_module
        return spec


if "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"  # Triton reads it once, when first imported
    sys.meta_path.insert(0, _BoundsCheckedTriton())

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


def show_ranks(function, world: int, make_args, timeout: float = 10):
    """Call your `function` on `world` ranks, as chapter 5 runs them (processes forked from this
    one, joined in one gloo process group: 5_distributed/launch.py), rank r with the arguments
    `make_args(r)` returns, and print, per rank, what it returned and what its arguments hold
    after, or why there is nothing (not written yet, an error on your line, ranks that wait for
    each other)."""
    load("5_distributed")
    import launch  # 5_distributed/launch.py (on the path once the chapter is loaded)

    def work(rank: int) -> str:
        args = make_args(rank)
        try:
            result = function(*args)
        except NotImplementedError as err:
            return f"not written yet ({err})"
        except Exception as err:  # noqa: BLE001  (your code may raise anything: say what, and on which line)
            return explain(err)
        after = ", ".join(brief(a, full=True) for a in args)
        return f"returned {brief(result, full=True)}; its arguments after the call: {after}"

    try:
        said = launch.in_forked_ranks(world, work, timeout=timeout)
    except TimeoutError:
        print(f"{function.__name__} on {world} ranks: they had not all finished after {timeout:g} s: each waits for "
              f"another (a deadlock); `python exercises/check.py` says more")
        return
    except launch.RankEnded as ended:
        print(f"{function.__name__} on {world} ranks: {ended} (a function ends by returning)")
        return
    for rank, line in enumerate(said):
        print(f"rank {rank}: {function.__name__}: {line}")
