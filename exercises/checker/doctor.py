"""`check.py --doctor`: is this machine ready for the exercises? Each line says what was found
and, where something is wrong, the fix.

It runs in check.py's own process and needs nothing beyond Python's standard library, so it
answers on the machine that most needs it (a venv without NumPy, a PyTorch that will not load):
the packages are imported, and Triton's interpreter tried, in a process of its own
(`check.py --doctor-probe`, `probe`), which says which import it was in if it dies.
"""

import importlib
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CHECK_PY = REPO_ROOT / "exercises" / "check.py"
INSTALL = ("fix: .venv/bin/pip install -r requirements.txt (README.md, 'Quick start'), and run check.py with "
           ".venv/bin/python")
IMPORT_LIMIT_S = 300  # PyTorch's first import on a slow, busy machine


def pins() -> dict[str, str] | None:
    """{package: pinned version} from requirements.txt, or None where it is missing."""
    try:
        text = (REPO_ROOT / "requirements.txt").read_text()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9_-]+)==([^;\s]+)", line.strip())
        if match:
            found[match[1].lower()] = match[2]
    return found


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def package(name: str, pinned: dict, needed_for: str, imported: dict) -> tuple[bool, str]:
    """Installed (its version against the pin), and importable (`imported`: what the probe's
    process found, {name: None or the error})."""
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False, f"FAIL  {name}: not installed in {sys.executable} ({needed_for}); {INSTALL}"
    failed = imported.get(name, "its import was not tried")
    if failed:
        want = pinned.get(name, version)
        return False, (f"FAIL  {name} {version} is installed but cannot be imported ({failed}); fix: .venv/bin/pip "
                       f"install --force-reinstall {name}=={want}")
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


PACKAGES = ["numpy", "torch", "matplotlib"] + ([] if sys.platform == "darwin" else ["triton"])


def probe() -> int:
    """`check.py --doctor-probe`, in a process of its own: import each package, then try
    Triton's interpreter as the checks use it; one JSON line per finding."""
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton loads, as exercises/chapters.py does
    imported = {}
    for name in PACKAGES:
        print(json.dumps({"importing": name}), flush=True)  # a crash here names the package it died in
        try:
            importlib.import_module(name)
            imported[name] = None
        except BaseException as err:  # noqa: BLE001  (whatever stops the import is the finding)
            imported[name] = last_line(f"{type(err).__name__}: {err}")
        print(json.dumps({"import": name, "error": imported[name]}), flush=True)
    if sys.platform == "darwin" or any(imported[name] for name in ("numpy", "torch", "triton")):
        return 0
    sys.path[:0] = [str(REPO_ROOT / "exercises"), str(REPO_ROOT)]
    try:
        import chapters  # noqa: F401  (the repository on the path, as for every check)
        from checker import bounds

        bounds.install()  # (chapters installs it when it loads Triton; here Triton was loaded above)
    except Exception as err:  # noqa: BLE001
        print(json.dumps({"probe": f"FAIL  the exercises' setup (exercises/chapters.py) raised "
                                   f"{type(err).__name__}: {err}; {INSTALL}", "ok": False}))
        return 0
    for check in (interpreter_adds, bounds_checked):
        good, line = check()
        print(json.dumps({"probe": line, "ok": good}), flush=True)
        if not good:
            break
    return 0


def run_probe() -> tuple[dict, list[tuple[bool, str]]]:
    """({package: None or why its import failed}, [(ok, line) of the interpreter's probes])."""
    imported, probes, trying = {}, [], None
    try:
        proc = subprocess.run([sys.executable, str(CHECK_PY), "--doctor-probe"], capture_output=True, text=True,
                              timeout=IMPORT_LIMIT_S)
        out, ended = proc.stdout, f"exit status {proc.returncode}: {last_line(proc.stderr)}"
    except subprocess.TimeoutExpired as err:
        out, ended = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or "", \
            f"it did not finish within {IMPORT_LIMIT_S} s"
    for line in out.splitlines():
        try:
            finding = json.loads(line)
        except ValueError:
            continue
        if "importing" in finding:
            trying = finding["importing"]
        elif "import" in finding:
            imported[finding["import"]], trying = finding["error"], None
        elif "probe" in finding:
            probes.append((bool(finding["ok"]), finding["probe"]))
    if trying:
        imported[trying] = f"its import ended the process ({ended})"
    return imported, probes


def doctor() -> dict:
    lines = []
    ok = True
    version = sys.version_info
    python_ok = (3, 11) <= version[:2] <= (3, 12)
    lines.append(f"{'ok   ' if python_ok else 'note '} Python {platform.python_version()} ({sys.executable})"
                 + ("" if python_ok else ": the repository is tested on 3.11 and 3.12"))
    pinned = pins()
    if pinned is None:
        pinned = {}
        lines.append("note  requirements.txt is missing from this checkout (git checkout requirements.txt puts it "
                     "back): versions are not compared with its pins")
    imported, probes = run_probe()
    found = {}
    for name, needed in (("numpy", "chapters 2-4, and the checker"), ("torch", "chapters 3-4"),
                         ("matplotlib", "the pictures")):
        found[name], line = package(name, pinned, needed, imported)
        ok &= found[name]
        lines.append(line)
    if sys.platform == "darwin":
        lines.append("note  Triton: there is no macOS build, so chapter 4's exercises need Linux; chapters 1-3 run "
                     "here")
    else:
        good, line = package("triton", pinned, "chapter 4", imported)
        ok &= good
        lines.append(line)
        if good and found["numpy"] and found["torch"]:
            if not probes:
                probes = [(False, f"FAIL  Triton's interpreter: its check ended before it began; {INSTALL}")]
            ok &= all(good for good, _ in probes)
            lines.extend(line for _, line in probes)
        elif good:
            lines.append("note  Triton's interpreter: not tried, since NumPy or PyTorch cannot be imported")
    verdict = "ready: every exercise can be checked here" if ok else "not ready: fix the FAIL lines above"
    return {"status": "ok" if ok else "not yet", "line": "\n".join([*lines, verdict])}
