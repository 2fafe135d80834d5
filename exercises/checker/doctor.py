"""`check.py --doctor`: is this machine ready for the exercises? Each line says what was found
and, where something is wrong, the fix."""

import platform
import re
import sys
from importlib import metadata

from chapters import REPO_ROOT

INSTALL = ("fix: .venv/bin/pip install -r requirements.txt (README.md, 'Quick start'), and run check.py with "
           ".venv/bin/python")


def pins() -> dict[str, str]:
    """{package: pinned version} from requirements.txt."""
    found = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_-]+)==([^;\s]+)", line.strip())
        if match:
            found[match[1].lower()] = match[2]
    return found


def package(name: str, pinned: dict, needed_for: str) -> tuple[bool, str]:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False, f"FAIL  {name}: not installed in {sys.executable} ({needed_for}); {INSTALL}"
    want = pinned.get(name)
    if want and version.split("+")[0] != want:
        return True, (f"note  {name} {version}: requirements.txt pins {want}; the checks should still hold, the "
                      f"chapters' committed numbers were made with {want}")
    return True, f"ok    {name} {version}"


def interpreter_adds() -> tuple[bool, str]:
    """Run a three-line kernel through Triton's interpreter: y = x + 1 on ten numbers, masked."""
    try:
        import torch
        import triton
        import triton.language as tl
    except ImportError as err:
        return False, f"FAIL  Triton's interpreter: cannot import ({err}); {INSTALL}"

    @triton.jit
    def add_one(x_ptr, y_ptr, N, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(y_ptr + offsets, tl.load(x_ptr + offsets, mask=offsets < N) + 1, mask=offsets < N)

    x = torch.arange(10, dtype=torch.float32)
    y = torch.zeros_like(x)
    try:
        add_one[(3,)](x, y, 10, BLOCK=4)
    except Exception as err:  # noqa: BLE001  (any failure here is the finding)
        return False, f"FAIL  Triton's interpreter raised {type(err).__name__}: {err}; {INSTALL}"
    if not torch.equal(y, x + 1):
        zeros = " (all zeros: the kernel did not run, so TRITON_INTERPRET was not set before Triton loaded)" \
            if not y.any() else ""
        return False, (f"FAIL  Triton's interpreter computed {y.tolist()} for x + 1{zeros}; fix: run the exercises "
                       f"through python exercises/check.py, which sets it")
    return True, "ok    Triton's interpreter runs a kernel (x + 1 on 10 numbers, 3 programs): right numbers"


def bounds_checked() -> tuple[bool, str]:
    """A store past the end must be caught, before it happens, with the exercises' message."""
    import torch
    import triton
    import triton.language as tl

    from .bounds import out_of_bounds

    @triton.jit
    def unmasked(y_ptr, BLOCK: tl.constexpr):
        tl.store(y_ptr + tl.arange(0, BLOCK), tl.zeros((BLOCK,), dtype=tl.float32))

    try:
        unmasked[(1,)](torch.zeros(5), BLOCK=8)
    except Exception as err:  # noqa: BLE001
        found = out_of_bounds(err)
        if found is not None:
            return True, "ok    out-of-bounds stores are caught before they happen (" + str(found) + ")"
        return False, f"FAIL  the bounds check raised {type(err).__name__}: {err}"
    return False, "FAIL  a store past the end went unnoticed: the bounds check is not installed"


def doctor() -> dict:
    pinned = pins()
    lines = []
    ok = True
    version = sys.version_info
    python_ok = (3, 11) <= version[:2] <= (3, 12)
    lines.append(f"{'ok   ' if python_ok else 'note '} Python {platform.python_version()} ({sys.executable})"
                 + ("" if python_ok else ": the repository is tested on 3.11 and 3.12"))
    for name, needed in (("numpy", "chapters 2-4"), ("torch", "chapters 3-4"), ("matplotlib", "the pictures")):
        good, line = package(name, pinned, needed)
        ok &= good
        lines.append(line)
    if sys.platform == "darwin":
        lines.append("note  Triton: there is no macOS build, so chapter 4's exercises need Linux (or Windows with "
                     "triton-windows); chapters 1-3 run here")
    else:
        good, line = package("triton" if sys.platform != "win32" else "triton-windows", pinned, "chapter 4")
        ok &= good
        lines.append(line)
        if good:
            for probe in (interpreter_adds, bounds_checked):
                good, line = probe()
                ok &= good
                lines.append(line)
                if not good:
                    break
    verdict = "ready: every exercise can be checked here" if ok else "not ready: fix the FAIL lines above"
    return {"status": "ok" if ok else "not yet", "line": "\n".join([*lines, verdict])}
