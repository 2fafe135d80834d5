"""How a record reaches the disk: whole or not at all, never over a complete one, and somewhere
even when its place fails.

- `write_json_atomic`: a temporary file beside the target, then a rename, with Ctrl-C, SIGTERM
  and SIGHUP held until it is on disk (`signals_held`): never a half file.
- `partial_path`: an unfinished record (an interrupted run, a sitting still going) goes to its
  file, unless that holds a complete record, which is kept: then beside it, `<name>.partial.json`.
- `write_or_rescue`: where the target cannot be written (a full disk, a folder removed), the
  record goes to the system's temporary folder instead, and the caller says where.
"""

import contextlib
import json
import os
import signal
import tempfile
import threading
from pathlib import Path

from shared.errors import UserError


def write_json_atomic(path: str | os.PathLike, obj: dict) -> Path:
    """Write `obj` as JSON to a temporary file beside `path`, then rename: never a half file.

    Through a symlink, the file it points to is written (the link stays). The file gets the
    permissions a new file gets under the umask. Ctrl-C and SIGTERM wait until the rename is
    done. Returns the path written."""
    return write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`write_json_atomic` for any text (a generated page, a README)."""
    path = Path(os.path.realpath(path))
    with signals_held():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")  # (a name
        # near the file system's 255-byte limit still gets a temporary beside it)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C, SIGTERM and SIGHUP while a file is written: they take effect when it is on disk.
    (Python runs signal handlers in the main thread, so the hold is a handler that only notes
    the signal; afterwards the handler that was there before gets it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)  # e.g. Python's Ctrl-C handler: KeyboardInterrupt, now
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), pending[0])


def write_or_rescue(path: str | os.PathLike, obj: dict, name: str) -> tuple[Path, OSError | None]:
    """Write `obj` to `path`; where that fails (a full disk, a folder removed), to the system's
    temporary folder instead, as `microgpt-<name>-<pid>.json`. Returns (where it is, the error
    that sent it there, or None). A UserError if neither can be written."""
    try:
        return write_json_atomic(path, obj), None
    except OSError as err:
        rescue = Path(tempfile.gettempdir()) / f"microgpt-{name}-{os.getpid()}.json"
        try:
            return write_json_atomic(rescue, obj), err
        except OSError:
            raise UserError(f"cannot write the results to {path} ({err.strerror}), nor to {rescue}; free some "
                            f"space and train again") from None


def holds_a_record(path: str | os.PathLike) -> bool:
    """Whether `path` holds something a run must not replace with an unfinished one: a complete
    record (neither `"partial": true` nor `"complete": false`), or a file that is not ours to judge."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return Path(path).exists()
    return not isinstance(data, dict) or (data.get("partial") is not True and data.get("complete") is not False)


def beside(out: Path) -> Path:
    """`<name>.partial.json` beside `out`."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix or '.json'}")


def partial_path(out: Path) -> Path:
    """Where an interrupted run's steps go: `out` itself, unless it holds a complete run, which
    is kept; then beside it, `<name>.partial.json`."""
    return beside(out) if holds_a_record(out) else Path(out)

