"""Check an exercise against the repository's own references.

    python exercises/check.py                  # the exercises, and which of yours pass
    python exercises/check.py 2.3              # check yours: exercises/ch2/attention_backward.py
    python exercises/check.py 2.3 --hint       # the next hint (the idea, then the shapes, then one formula)
    python exercises/check.py 3.3 --reveal     # a prediction's answer, once you have made yours
    python exercises/check.py 2.3 --solution   # check the worked solution (exercises/solutions/...)
    python exercises/check.py 2.3 --file PATH  # check another file
    python exercises/check.py --doctor         # is this machine ready? versions, the interpreter, the fix

Prints "ok: <what was verified>" and exits 0, or says what is wrong and exits 1: the smallest
case that fails, the first number that differs (with enough digits to see it, the difference
and the tolerance), the slip when yours is a known one, and a picture of the two arrays. Your
code runs in a process of its own, with a time and memory limit, and sends back only what it
computed: this process computes the references and decides (checker/sandbox.py says what that
promises). A prediction is read from your file's text, never run.
"""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from checker.catalog import BY_NUMBER, EXERCISES  # noqa: E402  (light: no NumPy, no torch)

OUT = Path(os.environ.get("MICROGPT_EXERCISES_OUT", HERE))  # where hint progress and pictures go
DEFAULT_TIME_LIMIT = 60.0


def hint(number: str, which: int | None) -> str:
    """Hint `which` (1-3) of `number`, or the next one not yet seen (remembered in OUT/.hints.json,
    read and written under a lock, so that hints asked at once are all remembered)."""
    exercise = BY_NUMBER[number]
    count = len(exercise.hints)
    with hints_locked():
        seen = read_hints()
        already = seen.get(number, 0)
        if which is None:
            which = min(already + 1, count)
        seen[number] = max(already, which)
        try:
            from shared.saving import write_json_atomic

            OUT.mkdir(parents=True, exist_ok=True)
            write_json_atomic(OUT / ".hints.json", seen)
        except OSError:
            pass  # progress not remembered (a read-only folder): the hint is still shown
    more = (f"(check.py {number} --hint for the next)" if which < count
            else "(that is the last hint; the worked solution is in exercises/solutions/" + exercise.file + ")"
            if exercise.kind == "write" else f"(that is the last hint; check.py {number} --reveal gives the answer)")
    return f"hint {which} of {count} for {number}: {exercise.hints[which - 1]}\n{more}"


def read_hints() -> dict[str, int]:
    """{exercise: hints seen} from OUT/.hints.json; anything that is not a count from 0 to 3 is 0."""
    try:
        seen = json.loads((OUT / ".hints.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(seen, dict):
        return {}
    return {number: max(0, min(value, len(BY_NUMBER[number].hints))) for number, value in seen.items()
            if number in BY_NUMBER and isinstance(value, int) and not isinstance(value, bool)}


@contextlib.contextmanager
def hints_locked():
    """An exclusive lock on OUT/.hints.lock (POSIX; without one, or in a read-only folder, none)."""
    try:
        import fcntl

        OUT.mkdir(parents=True, exist_ok=True)
        lock = open(OUT / ".hints.lock", "a")
    except (ImportError, OSError):
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def show(result: dict) -> None:
    print(result["line"])
    if result.get("picture"):
        try:
            where = Path(result["picture"]).relative_to(Path.cwd())
        except ValueError:
            where = result["picture"]
        print(f"picture: {where} (yours | expected | difference)")
    if result.get("printed_total"):
        shown = result["printed"]
        cut = f", the first {len(shown):,} shown" if result["printed_total"] > len(shown) else ""
        print(f"--- your code printed {result['printed_total']:,} characters{cut} ---")
        print(shown.rstrip("\n"))
        print("--- end of what your code printed ---")


def run_jobs(jobs: list[dict], time_limit: float, on_result=None) -> list[dict]:
    """checker/sandbox.py's run_jobs, or one line and exit 1 where NumPy, which the checker
    needs, cannot be imported (--doctor says what else is missing)."""
    if os.name != "posix":
        print("error: the checker runs each answer in a process it forks, which needs Linux or macOS (on Windows, "
              "WSL)", file=sys.stderr)
        sys.exit(1)
    try:
        import numpy  # noqa: F401
    except Exception as err:  # noqa: BLE001  (missing, or installed but broken)
        print(f"error: the checker needs NumPy, and {sys.executable} cannot import it ({type(err).__name__}: "
              f"{err}); python exercises/check.py --doctor says what is missing and the fix", file=sys.stderr)
        sys.exit(1)
    import chapters  # noqa: F401  (the repository on the path; Triton in its interpreter, bounds-checked)
    from checker.sandbox import run_jobs as run

    return run(jobs, time_limit, on_result)


def listing(time_limit: float) -> int:
    jobs, where = [], {}
    for exercise in EXERCISES:
        path = HERE / exercise.file
        if path.is_file():
            where[len(jobs)] = exercise
            jobs.append({"kind": "check", "number": exercise.number, "path": str(path), "pictures": False})
        else:
            print(f"{exercise.number}  missing  exercises/{exercise.file}: {exercise.title} (git checkout "
                  f"exercises/{exercise.file} puts the stub back)")
    marks = {"ok": "done   ", "not written": "to do  ", "not yet": "not yet", "error": "error  "}

    def line(index, result):
        exercise = where[index]
        print(f"{exercise.number}  {marks.get(result['status'], 'not yet')}  exercises/{exercise.file}: "
              f"{exercise.title}", flush=True)

    run_jobs(jobs, time_limit, on_result=line)
    print("python exercises/check.py N.M checks one and says what is wrong; --hint gives a hint")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:9]))
    parser.add_argument("number", nargs="?", help="the exercise, e.g. 2.3 (none: list them all)")
    parser.add_argument("--solution", action="store_true", help="check the worked solution instead of yours")
    parser.add_argument("--file", help="check this file (a .py file) instead of yours")
    parser.add_argument("--hint", nargs="?", const=0, type=int, metavar="K",
                        help="the next hint, or hint K (1-3)")
    parser.add_argument("--reveal", action="store_true", help="a prediction's answer (1.2, 3.3, 4.8, 5.4)")
    parser.add_argument("--doctor", action="store_true", help="check this machine: versions, the interpreter, fixes")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, metavar="SECONDS",
                        help=f"how long your code may run for one check (default {DEFAULT_TIME_LIMIT:g})")
    parser.add_argument("--no-picture", action="store_true", help="do not draw the picture of a wrong array")
    # The checker's own processes (checker/answer.py, checker/doctor.py) and its batch mode (the tests):
    parser.add_argument("--zygote", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--doctor-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", nargs=2, metavar=("JOBS", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zygote:
        from checker.answer import zygote_main

        return zygote_main(int(args.zygote[0]), args.zygote[1:])
    if args.doctor_probe:
        from checker.doctor import probe

        return probe()
    if not args.time_limit > 0:
        parser.error(f"--time-limit must be a positive number of seconds, not {args.time_limit:g}")
    if args.jobs:
        results = run_jobs(json.loads(Path(args.jobs[0]).read_text()), args.time_limit)
        Path(args.jobs[1]).write_text(json.dumps(results))
        return 0
    if args.doctor:
        from checker.doctor import doctor

        result = doctor()
        show(result)
        return 0 if result["status"] == "ok" else 1
    if args.number is None:
        if args.solution or args.file or args.hint is not None or args.reveal:
            parser.error("say which exercise, e.g. python exercises/check.py 2.3 --hint")
        return listing(args.time_limit)
    if args.number not in BY_NUMBER:
        parser.error(f"there is no exercise {args.number!r}; they are {', '.join(BY_NUMBER)}")
    exercise = BY_NUMBER[args.number]
    if args.hint is not None:
        if not 0 <= args.hint <= len(exercise.hints):
            parser.error(f"--hint takes 1 to {len(exercise.hints)}, or nothing for the next hint")
        print(hint(args.number, args.hint or None))
        return 0
    if args.reveal:
        if exercise.kind != "predict":
            parser.error(f"{args.number} is written, not predicted: compare yours with the worked solution, "
                         f"exercises/solutions/{exercise.file}")
        (result,) = run_jobs([{"kind": "reveal", "number": args.number}], args.time_limit)
        show(result)
        return 0 if result["status"] == "ok" else 1
    path = Path(args.file) if args.file else HERE / ("solutions" if args.solution else "") / exercise.file
    if not path.is_file():
        what = "" if args.file else f"; git checkout exercises/{exercise.file} puts the stub back"
        print(f"error: there is no file {path}{what}", file=sys.stderr)
        return 1
    if path.suffix != ".py":
        print(f"error: {path} is not a Python file: --file takes the .py file of your answer (exercises/"
              f"{exercise.file} is {args.number}'s)", file=sys.stderr)
        return 1
    (result,) = run_jobs([{"kind": "check", "number": args.number, "path": str(path.resolve()),
                           "pictures": not args.no_picture}], args.time_limit)
    show(result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    try:
        status = main()
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("stopped (Ctrl-C): nothing was changed", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader stopped reading (check.py ... | head -1): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(status)
