"""One job of the checker, in the judge's process: check an answer (in an answer's process of
its own, sandbox.py; a prediction is read from its file's text) or reveal a prediction. Whatever
happens, the job ends in a result (a dict) with one line for the learner."""

import importlib
import os
import time
import traceback
from pathlib import Path

from .catalog import BY_NUMBER, STAGES
from .harness import Crashed, Ended, Learner, Prediction
from .sandbox import CheckerFailed
from .verdict import Mismatch, NotWritten, UsedReference

EXERCISES = Path(__file__).resolve().parent.parent
REPO_ROOT = EXERCISES.parent
PICTURES = Path(os.environ.get("MICROGPT_EXERCISES_OUT", EXERCISES)) / "pictures"


class UserSide(Exception):
    """A problem on the learner's side of the check (a missing chapter, an unreadable data file):
    said in one line with its fix, not as the checker's bug."""


def missing_chapters(number: str) -> None:
    for stage in STAGES[BY_NUMBER[number].chapter]:
        if not (REPO_ROOT / stage / "main.py").is_file():
            raise UserSide(f"{stage}/main.py is missing from this checkout, and the check compares with the "
                           f"chapter's own code: git checkout {stage}/main.py puts it back")


def check(number: str, path: str, pictures: bool, session, time_limit: float | None = None) -> dict:
    exercise = BY_NUMBER[number]
    missing_chapters(number)
    module = importlib.import_module(f"checker.chapter{exercise.chapter}")
    check_function = getattr(module, exercise.check_function)
    printed = ("", 0)
    try:
        if exercise.kind == "predict":
            verified = check_function(Prediction(Path(path)))
        else:
            with session.answer(time_limit) as process:
                try:
                    verified = check_function(Learner(Path(path), process))
                finally:
                    printed = process.printed()
        result = {"status": "ok", "line": f"ok: {number} -- {verified}"}
    except NotWritten as err:
        result = {"status": "not written", "line": f"not written yet: {number} -- {err} (the stub says what to "
                                                   f"write; check.py {number} --hint gives a hint)"}
    except (Mismatch, UsedReference, Crashed, Ended) as err:
        result = {"status": "not yet", "line": f"not yet: {number} -- {err}"}
        picture = getattr(err, "picture", None)
        if pictures and picture is not None:
            result["picture"] = draw(number, str(err), picture)
    result["printed"], result["printed_total"] = printed
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
    missing_chapters(number)
    module = importlib.import_module(f"checker.chapter{exercise.chapter}")
    answer = getattr(module, "reveal_" + exercise.check_function.removeprefix("check_"))()
    return {"status": "ok", "line": f"the answer to {number}: {answer}"}


def run_job(job: dict, session) -> dict:
    """Run one job; never raises (but for Ctrl-C)."""
    started = time.perf_counter()
    number = job.get("number", "")
    try:
        if job["kind"] == "check":
            result = check(number, job["path"], job.get("pictures", True), session, job.get("time_limit"))
        else:
            result = reveal(number)
    except KeyboardInterrupt:
        raise
    except CheckerFailed as err:
        result = {"status": "error", "line": f"error: {number} -- {err}; python exercises/check.py --doctor says "
                                             f"what is missing"}
    except BaseException as error:  # noqa: BLE001  (the checker's own failure: said in one line, not a traceback)
        result = {"status": "error", "line": f"error: {number} -- {user_side(error) or checker_bug(error)}"}
    result["seconds"] = round(time.perf_counter() - started, 3)
    result.setdefault("printed", "")
    result.setdefault("printed_total", 0)
    return result


def user_side(error: BaseException) -> str | None:
    """The one line for a problem the learner can fix (shared/'s UserError: a data file, say)."""
    if isinstance(error, UserSide):
        return str(error)
    if type(error).__name__ == "UserError":
        data = os.environ.get("MICROGPT_DATA")
        return f"{error}" + (f" (the checker reads the names from $MICROGPT_DATA, {data}: unset it, or point it at "
                             f"a names file)" if data and "data" in str(error) else "")
    return None


def checker_bug(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f", at {Path(frame.filename).name} line {frame.lineno}" if frame else ""
    return (f"the checker itself failed ({type(error).__name__}: {error}{at}); if your answer looks right, this is "
            f"a bug in the checker: please report it")
