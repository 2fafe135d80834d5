"""The log line, the results file, and the two numbers readers see.

    step    1 / 1000 | loss 3.3660 | 52.31 ms        (SPEC.md log line)

Results file (SPEC.md shape; written to a temporary name, then renamed):
    stage, config, num_params, losses, step_ms, total_s, samples, env
plus `partial: true` when the run was interrupted, and any per-step series a stage
records besides (doc_len: the target positions the step trained, summed over its documents;
graph_nodes, ...).

Readers see: step time = median of step_ms after the first 10 steps (warm-up);
loss = mean of the last 100 losses (at batch size 1 one step's loss is one name: noise).
"""

import contextlib
import datetime
import errno
import importlib.metadata
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from shared.errors import UserError, stopped

WARMUP_STEPS = 10
LOSS_WINDOW = 100
ETA_AFTER_S = 60  # a run expected to take longer than this prints the time left on each line


def log_line(step: int, num_steps: int, loss: float, ms: float) -> str:
    """SPEC.md log line; `step` is 1-based."""
    return f"step {step:4d} / {num_steps:4d} | loss {loss:.4f} | {ms:.2f} ms"


def median_step_ms(step_ms: list[float], warmup: int = WARMUP_STEPS) -> float:
    """Median step time after warm-up (all steps if the run is shorter than the warm-up)."""
    timed = step_ms[warmup:] or step_ms
    return statistics.median(timed)


def final_loss(losses: list[float], window: int = LOSS_WINDOW) -> float:
    """Mean of the last `window` losses."""
    tail = losses[-window:]
    return sum(tail) / len(tail)


def throughput(results: dict) -> tuple[float, float | None]:
    """(names per second, tokens per second) at the median step time: a step trains
    batch_size names and, on average over the same steps, mean(doc_len) target positions."""
    ms = median_step_ms(results["step_ms"])
    names = results["config"].get("batch_size", 1) * 1000.0 / ms
    positions = results.get("doc_len")
    if not positions:
        return names, None
    return names, statistics.fmean(positions[WARMUP_STEPS:] or positions) * 1000.0 / ms


def summarize(results: dict) -> dict:
    """The numbers a README or table quotes, computed from one results file."""
    names_per_s, tokens_per_s = throughput(results)
    return {
        "stage": results["stage"],
        "num_params": results["num_params"],
        "steps": len(results["losses"]),
        "batch_size": results["config"].get("batch_size", 1),
        "names_per_s": names_per_s,
        "tokens_per_s": tokens_per_s,
        "median_step_ms": median_step_ms(results["step_ms"]),
        "total_s": results["total_s"],
        "final_loss": final_loss(results["losses"]),
        "device": results["env"]["device"],
        "interpreter": results["env"].get("interpreter", False),
    }


def package_version(name: str) -> str | None:
    """Installed version of `name`, without importing it (a program that uses none imports none)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu", interpreter: bool = False, **extra) -> dict:
    """Where a run happened: versions, device, CPU, date (SPEC.md `env`)."""
    env = {
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "torch": package_version("torch"),
        "triton": package_version("triton"),
        "device": device,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "interpreter": interpreter,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    env.update(extra)
    return env


def write_json_atomic(path: str | os.PathLike, obj: dict) -> Path:
    """Write `obj` to a temporary file beside `path`, then rename: never a half file.

    Through a symlink, the file it points to is written (the link stays). The file gets the
    permissions a new file gets under the umask. Ctrl-C and SIGTERM wait until the rename is
    done. Returns the path written."""
    path = Path(os.path.realpath(path))
    with signals_held():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")  # (a name
        # near the file system's 255-byte limit still gets a temporary beside it)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(obj, f, indent=1)
                f.write("\n")
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


def say(line: str = "", **kwargs) -> None:
    """print(), except that a stdout that cannot take it (`| head` closed it, `> /dev/full`) does
    not stop the run: from then on the log goes nowhere, and the results file still gets every step."""
    global stdout_closed
    if stdout_closed:
        return
    try:
        print(line, flush=True, **kwargs)
    except OSError as err:  # a closed pipe, a full device (`> /dev/full`), a terminal gone: the log is lost
        if err.errno not in (errno.EPIPE, errno.ENOSPC, errno.EIO):
            raise
        stdout_closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        os.close(devnull)


stdout_closed = False


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


class Progress:
    """A record written again as it grows (a benchmark sitting, row by row), by the stages' rule:
    while unfinished it goes to `out`, unless `out` held a complete record when the writer
    started, which is never replaced by an unfinished one: then it goes beside, to
    `<name>.partial.json`. The finished record goes to `out`, and the partial beside is removed."""

    def __init__(self, out: str | os.PathLike, name: str):
        self.out, self.name = Path(out), name
        self.unfinished = partial_path(self.out)

    def write(self, obj: dict, complete: bool) -> Path:
        """Write `obj` (with `"complete"` set) where it belongs; rescued to the temporary folder,
        and said so, if that fails."""
        obj = {**obj, "complete": complete}
        where, err = write_or_rescue(self.out if complete else self.unfinished, obj, self.name)
        if err is not None:
            print(f"could not write {self.out if complete else self.unfinished} ({err.strerror}); "
                  f"saved in {where} instead", file=sys.stderr, flush=True)
        elif complete and self.unfinished != self.out:
            self.unfinished.unlink(missing_ok=True)
        return where


def load_results(path: str | os.PathLike, check: bool = True) -> dict:
    """A results file (SPEC.md's schema); a missing, unreadable, truncated or malformed one is a
    UserError naming the file and what is wrong with it, never a traceback further on."""
    fix = f"restore it (git checkout -- {path}) or rerun the run that writes it"
    try:
        with open(path) as f:
            res = json.load(f)
    except OSError as err:
        raise UserError(f"cannot read results file {path} ({err.strerror}); {fix}") from None
    except RecursionError:
        raise UserError(f"results file {path} is nested too deeply to be a results file; {fix}") from None
    except ValueError as err:
        raise UserError(f"results file {path} is not complete JSON ({err}); {fix}") from None
    problem = validate(res) if check else None
    if problem:
        raise UserError(f"results file {path} is not a results file of this repository: {problem}; {fix}")
    return res


def validate(res) -> str | None:
    """What is wrong with a results file's content against SPEC.md's schema, or None: the keys,
    their types, and numbers that a run can make (finite losses, positive step times, one of each
    per step)."""
    if not isinstance(res, dict):
        return f"it holds {type(res).__name__}, not an object with the keys {', '.join(REQUIRED)}"
    missing = [key for key in REQUIRED if key not in res]
    if missing:
        return f"it has no {', '.join(missing)}"
    for key, kind in REQUIRED.items():
        if not isinstance(res[key], kind) or isinstance(res[key], bool):
            return f"its {key} is {type(res[key]).__name__}, not {_kind_name(kind)}"
    losses, step_ms = res["losses"], res["step_ms"]
    if not losses:
        return "it has no steps (its losses are empty)"
    if len(step_ms) != len(losses):
        return f"it has {len(losses)} losses and {len(step_ms)} step times"
    for name, values in (("losses", losses), ("step_ms", step_ms)):
        bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
                    or not math.isfinite(v)), None)
        if bad is not None or (name == "step_ms" and min(values) <= 0):
            return f"its {name} hold {bad!r}" if bad is not None else "its step_ms hold a time of zero or less"
    for key in ("steps", "batch_size"):
        value = res["config"].get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return f"its config's {key} is {value!r}, not a positive integer"
    if not isinstance(res["env"].get("device"), str):
        return "its env names no device"
    if not all(isinstance(name, str) for name in res["samples"]):
        return "its samples are not all text"
    if "doc_len" in res and (not isinstance(res["doc_len"], list) or len(res["doc_len"]) != len(losses)):
        return "its doc_len is not one number per step"
    return None


REQUIRED = {"stage": str, "config": dict, "num_params": int, "losses": list, "step_ms": list,
            "total_s": (int, float), "samples": list, "env": dict}


def _kind_name(kind) -> str:
    names = {str: "text", dict: "an object", int: "an integer", list: "a list"}
    return names.get(kind, "a number")


class TrainingRun:
    """Collects one run's per-step numbers, prints the log line, writes the results file.

    Use as a context manager around the training loop: a Ctrl-C inside it still writes
    the steps done so far, marked `"partial": true`, before the interrupt goes on.
    """

    def __init__(self, stage: str, config: dict, num_params: int, out: str | os.PathLike, env: dict):
        self.stage, self.config, self.num_params = stage, config, num_params
        self.out, self.env = Path(out), env
        self.losses: list[float] = []
        self.step_ms: list[float] = []
        self.series: dict[str, list] = {}
        self.started = time.perf_counter()
        self.total_s = 0.0

    def record(self, loss: float, seconds: float, **series) -> None:
        """One finished step: its loss, its wall time, and any extra per-step values."""
        step = len(self.losses) + 1
        if not math.isfinite(loss):
            raise UserError(
                f"loss became {loss} at step {step}: training diverged; "
                f"try --dtype float64, a smaller model, or check the data"
            )
        self.losses.append(float(loss))
        self.step_ms.append(seconds * 1000.0)
        for key, value in series.items():
            self.series.setdefault(key, []).append(value)
        self.total_s = time.perf_counter() - self.started
        line = log_line(step, self.config["steps"], loss, seconds * 1000.0)
        remaining = self.total_s / step * (self.config["steps"] - step)
        if self.total_s + remaining > ETA_AFTER_S:  # a long run says when it will end
            line += f" | eta {remaining // 60:.0f}m{remaining % 60:02.0f}s"
        say(line)

    def record_launch(self, losses: list[float], seconds: float, **series: list) -> None:
        """Many steps run by one launch that took `seconds`: each step is logged with an equal
        share of it, and the run's total is the launch, not the printing of its log."""
        for step, loss in enumerate(losses):
            self.record(loss, seconds / len(losses), **{key: values[step] for key, values in series.items()})
        self.total_s = seconds

    def results(self, samples: list[str], partial: bool = False) -> dict:
        results = {
            "stage": self.stage,
            "config": self.config,
            "num_params": self.num_params,
            "losses": self.losses,
            "step_ms": self.step_ms,
            "total_s": self.total_s,
            "samples": samples,
            "env": self.env,
        }
        if partial:
            results["partial"] = True
        results.update(self.series)
        return results

    def restart_clock(self) -> None:
        """The run's total time counts from here (after set-up such as compiling)."""
        self.started = time.perf_counter()

    def finish(self, samples: list[str], where: str | os.PathLike | None = None) -> dict:
        """Write the complete results file (to `where` if it was written already) and print the
        two headline numbers; returns the results."""
        results = self.results(samples)
        where = where or write_json_atomic(self.out, results)
        summary = summarize(results)
        tokens = f", {summary['tokens_per_s']:,.0f} tokens/s" if summary["tokens_per_s"] else ""
        steps = len(self.losses)
        timed = (f"median {summary['median_step_ms']:.2f} ms/step after warm-up" if steps > WARMUP_STEPS else
                 f"median {summary['median_step_ms']:.2f} ms/step over all {steps} steps (no warm-up left out)")
        say(f"{self.stage}: {timed} ({summary['names_per_s']:,.0f} names/s{tokens}), total "
            f"{summary['total_s']:.1f} s, mean loss of the last {min(steps, LOSS_WINDOW)} steps "
            f"{summary['final_loss']:.4f} -> {where}")
        return results

    def __enter__(self) -> "TrainingRun":
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Whatever stops the training -- Ctrl-C, SIGTERM, a loss gone NaN, an error -- the steps
        done so far are written, marked partial (write_json_atomic holds a second Ctrl-C until
        they are on disk); then the run stops as it would have, saying where they are."""
        if exc_type is None or not self.losses:
            return False
        results = self.results(samples=[], partial=True)
        if not issubclass(exc_type, KeyboardInterrupt):
            results["error"] = f"{exc_type.__name__}: {exc}"
        where, err = write_or_rescue(partial_path(self.out), results, f"{self.stage}.partial")
        if err is not None:
            print(f"could not write {self.out} ({err.strerror})", file=sys.stderr)
        kept = f"after {len(self.losses)} steps; partial results in {where}"
        if issubclass(exc_type, KeyboardInterrupt):
            raise stopped(exc_type, kept) from None
        if issubclass(exc_type, UserError):
            raise UserError(f"{exc} ({kept})") from None
        print(f"training stopped {kept}", file=sys.stderr)
        return False
