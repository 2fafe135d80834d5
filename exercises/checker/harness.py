"""Running a learner's code inside a check: loading the file, calling it with the chapter's own
version of the answer swapped out, turning whatever it raises into one message that points at
the learner's line, and running a check over many cases, reporting the smallest that fails.
"""

import importlib.util
import itertools
import linecache
import re
import sys
import traceback
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from .verdict import Mismatch, NotWritten, UsedReference, Verdict


class Crashed(Verdict):
    """The learner's code raised, or ended the process, where an answer was due."""


STUB_MARK = re.compile(r"\bwrite \w+")  # a kernel stub's tl.static_assert(False, "write add_kernel")


class Learner:
    """The learner's file, loaded as a module, and the things its answer may not call."""

    def __init__(self, path: Path, forbidden=()):
        self.path = Path(path).resolve()
        self.forbidden = list(forbidden)  # (owner, attribute, what it is, or the replacement) triples
        self.contexts = []  # more context managers around every call (e.g. chapter 4's allocations-only mode)
        self.crash_slips = {}  # {text in an error message: the slip it means}
        self.module = None

    def load(self):
        """Run the learner's file as a module (with the references swapped out) and return it."""
        if not self.path.is_file():
            raise Crashed(f"there is no file {self.path}")
        name = f"exercise_{self.path.stem}_{abs(hash(str(self.path)))}"
        spec = importlib.util.spec_from_file_location(name, self.path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        linecache.checkcache(str(self.path))
        with self.swapped():
            self.guarded(spec.loader.exec_module, module, while_doing="while loading")
        self.module = module
        return module

    def call(self, function, *args, **kwargs):
        """function(*args, **kwargs), the learner's, with the chapter's references swapped out."""
        with self.swapped():
            return self.guarded(function, *args, while_doing=f"in {getattr(function, '__name__', 'your code')}",
                             **kwargs)

    def attribute(self, name: str):
        """The module's `name`, or Mismatch saying it is missing."""
        if not hasattr(self.module, name):
            raise Mismatch(f"your file has no `{name}`: keep the stub's name (git diff shows what changed)")
        return getattr(self.module, name)

    @contextmanager
    def swapped(self):
        saved = []
        try:
            for owner, attribute, what in self.forbidden:
                stand_in = Forbidden(what) if isinstance(what, str) else what
                if isinstance(owner, dict):  # sys.modules: a whole package is off limits
                    saved.append((owner, attribute, owner.get(attribute)))
                    owner[attribute] = stand_in
                else:
                    saved.append((owner, attribute, getattr(owner, attribute)))
                    setattr(owner, attribute, stand_in)
            with ExitStack() as stack:
                for context in self.contexts:
                    stack.enter_context(context())
                yield
        finally:
            for owner, attribute, value in reversed(saved):
                if isinstance(owner, dict):
                    if value is None:
                        owner.pop(attribute, None)
                    else:
                        owner[attribute] = value
                else:
                    setattr(owner, attribute, value)

    def guarded(self, function, *args, while_doing: str = "in your code", **kwargs):
        try:
            return function(*args, **kwargs)
        except Verdict:
            raise
        except SystemExit as exit_:
            raise Crashed(f"your code called sys.exit({exit_.code!r}) {while_doing}{self.where(exit_)}: an answer "
                          f"returns its result; it does not end the program") from None
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001  (a learner's code may raise anything: one line says what)
            raise self.explain(error, while_doing) from None

    def explain(self, error: BaseException, while_doing: str) -> Verdict:
        """One message for what the learner's code raised: the stub's marker, a reference it
        called, an out-of-bounds access, or the exception with the learner's own line."""
        from_bounds = _out_of_bounds(error)
        if from_bounds is not None:
            return Mismatch(str(from_bounds))
        root = error
        while isinstance(root.__cause__ or root.__context__, BaseException) and _is_wrapper(root):
            root = root.__cause__ or root.__context__
        if isinstance(root, UsedReference):
            return root
        text = str(root).strip()
        if isinstance(root, NotImplementedError):
            return NotWritten(text or "the stub still raises NotImplementedError")
        if isinstance(root, AssertionError) and STUB_MARK.fullmatch(text):  # a kernel stub's static_assert
            return NotWritten(f"the kernel is still the stub ({text})")
        if isinstance(root, MemoryError):
            return Crashed(f"your code ran out of memory {while_doing}{self.where(root)} (the check allows "
                           f"{MEMORY_LIMIT_GIB} GiB)")
        if isinstance(root, SyntaxError) and Path(root.filename or "").resolve() == self.path:
            return Crashed(f"your file has a syntax error at line {root.lineno}: {root.msg}")
        last = text.splitlines()[-1] if text else ""
        slip = next((what for pattern, what in self.crash_slips.items() if pattern in text), None)
        return Crashed(f"your code raised {type(root).__name__} {while_doing}{self.where(root)}"
                       + (f": {last}" if last else "") + (f" -- {slip}" if slip else ""))

    def where(self, error: BaseException) -> str:
        """' (tanh.py, line 12: `return x * y`)': the learner's innermost line in the traceback."""
        frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == self.path]
        if not frames:
            return ""
        frame = frames[-1]
        code = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
        return f" ({self.path.name}, line {frame.lineno}" + (f": `{code}`" if code else "") + ")"


MEMORY_LIMIT_GIB = 4


def _is_wrapper(error: BaseException) -> bool:
    """Triton's interpreter re-raises what a kernel raised as InterpreterError(repr(original))."""
    return type(error).__name__ == "InterpreterError"


def _out_of_bounds(error: BaseException):
    if "triton" not in sys.modules:
        return None
    from .bounds import out_of_bounds

    return out_of_bounds(error)


class Forbidden:
    """Stands in for the chapter's own version of the answer while the learner's code runs."""

    def __init__(self, what: str):
        self._what = what

    def _refuse(self):
        raise UsedReference(f"your code used {self._what}: write it yourself")

    def __call__(self, *args, **kwargs):
        self._refuse()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()

    def __getitem__(self, key):  # a kernel launched as kernel[grid](...)
        self._refuse()


# --------------------------------------------------------------------------- cases


class Case(dict):
    """One input of a check: its sizes (ints) and its random seed."""

    @property
    def size(self) -> int:
        if "names" in self:  # a batch of names: its letters
            return sum(map(len, self["names"])) * 100 + self.get("block_size", 0)
        return int(np.prod([v for k, v in self.items() if k != "seed" and isinstance(v, int)] or [1]))

    def label(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.items() if k != "seed")
        return sizes + (f" (seed {self['seed']})" if "seed" in self else "")


def random_cases(seed: int, count: int, ranges: dict) -> list[Case]:
    """`count` cases with each size drawn from its (low, high) range, reproducibly."""
    rng = np.random.default_rng(seed)
    return [Case({k: int(rng.integers(lo, hi + 1)) for k, (lo, hi) in ranges.items()}, seed=1000 + i)
            for i in range(count)]


def smaller(case: Case, minimum: dict) -> list[Case]:
    """Cases one shrinking move away from `case`: one size set to its minimum, halved, or less by one."""
    out = []
    for key, low in minimum.items():
        value = case[key]
        for candidate in dict.fromkeys((low, value // 2, value - 1)):
            if low <= candidate < value:
                out.append(Case({**case, key: candidate}))
    return out


def kind(failure: Exception) -> tuple[str, str, str]:
    """What a failure is about, without its numbers: 'dL/dx' of 'dL/dx[0, 2]: expected ...', and
    the slip it names, if any (a smaller case must show the same slip, not another)."""
    text = str(failure)
    return type(failure).__name__, re.split(r"[\[:(]", text, maxsplit=1)[0], text.partition(" -- ")[2]


def over_cases(run, cases: list[Case], minimum: dict | None = None, valid=lambda case: True,
               budget: int = 24) -> None:
    """Run `run(case)` on every case, smallest first. On the first failure, shrink it -- try
    smaller sizes (`minimum` gives each size's floor) while it still fails the same way -- and
    raise the failure of the smallest failing case found, naming that case."""
    for case in sorted(cases, key=lambda c: c.size):
        try:
            run(case)
        except (Mismatch, Crashed) as failure:
            first = case
            tries = itertools.count()
            improved = True
            while improved and minimum:
                improved = False
                for candidate in smaller(case, minimum):
                    if not valid(candidate) or next(tries) >= budget:
                        continue
                    try:
                        run(candidate)
                    except (Mismatch, Crashed) as smaller_failure:
                        if kind(smaller_failure) == kind(failure):
                            case, failure, improved = candidate, smaller_failure, True
                            break
            shrunk = f", shrunk from {first.label()}" if case is not first else ""
            failure.args = (f"on {case.label()}{shrunk}: {failure}",)
            raise failure
