"""One job of the check's own process: check an answer, reveal a prediction, or run the doctor.
Whatever happens, the job ends in a result (a dict) with one line for the learner."""

import importlib
import io
import os
import sys
import time
import traceback
from pathlib import Path

from .catalog import BY_NUMBER
from .harness import Crashed, Learner
from .verdict import Mismatch, NotWritten, UsedReference

EXERCISES = Path(__file__).resolve().parent.parent
PICTURES = Path(os.environ.get("MICROGPT_EXERCISES_OUT", EXERCISES)) / "pictures"


class Capped(io.TextIOBase):
    """Stands in for stdout and stderr during a job: keeps the first `limit` characters, counts the rest."""

    def __init__(self, limit: int = 4000):
        self.limit, self.kept, self.total = limit, [], 0

    def write(self, text) -> int:
        text = str(text)
        room = self.limit - sum(map(len, self.kept))
        if room > 0:
            self.kept.append(text[:room])
        self.total += len(text)
        return len(text)

    def writable(self) -> bool:
        return True

    @property
    def text(self) -> str:
        return "".join(self.kept)


def check(number: str, path: str, pictures: bool) -> dict:
    exercise = BY_NUMBER[number]
    module = importlib.import_module(f"checker.chapter{exercise.chapter}")
    learner = Learner(Path(path))
    try:
        verified = getattr(module, exercise.check_function)(learner)
        return {"status": "ok", "line": f"ok: {number} -- {verified}"}
    except NotWritten as err:
        return {"status": "not written", "line": f"not written yet: {number} -- {err} (the stub says what to "
                                                 f"write; check.py {number} --hint gives a hint)"}
    except (Mismatch, UsedReference, Crashed) as err:
        result = {"status": "not yet", "line": f"not yet: {number} -- {err}"}
        picture = getattr(err, "picture", None)
        if pictures and picture is not None:
            result["picture"] = draw(number, str(err), picture)
        return result


def draw(number: str, message: str, picture: dict) -> str | None:
    """The picture of a mismatch, written to exercises/pictures/<number>.png; its path, or None."""
    from .pictures import draw as draw_picture

    title = f"exercise {number}: " + message.split(":", 1)[0]
    try:
        return str(draw_picture(PICTURES / f"{number}.png", title, picture))
    except Exception:  # noqa: BLE001  (a picture is extra: no picture rather than no verdict)
        return None


def reveal(number: str) -> dict:
    exercise = BY_NUMBER[number]
    module = importlib.import_module(f"checker.chapter{exercise.chapter}")
    answer = getattr(module, "reveal_" + exercise.check_function.removeprefix("check_"))()
    return {"status": "ok", "line": f"the answer to {number}: {answer}"}


def run_job(job: dict) -> dict:
    """Run one job with its printing captured; never raises (but for Ctrl-C)."""
    captured = Capped()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = captured
    started = time.perf_counter()
    try:
        if job["kind"] == "check":
            result = check(job["number"], job["path"], job.get("pictures", True))
        elif job["kind"] == "reveal":
            result = reveal(job["number"])
        else:
            from .doctor import doctor

            result = doctor()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001  (the checker's own failure: said in one line, not a traceback)
        frame = traceback.extract_tb(error.__traceback__)[-1]
        result = {"status": "error", "line": f"error: {job.get('number', '')} -- the checker itself failed "
                                             f"({type(error).__name__}: {error}, at {Path(frame.filename).name} line "
                                             f"{frame.lineno}); if your answer looks right, this is a bug in the "
                                             f"checker: please report it"}
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["printed"], result["printed_total"] = captured.text, captured.total
    return result
