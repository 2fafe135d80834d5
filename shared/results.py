"""A run's record and the two numbers readers see.

`TrainingRun` collects one run's per-step numbers, prints the log line (shared/log.py) and
writes the results file (SPEC.md shape; shared/saving.py writes it whole):
    stage, config, num_params, losses, step_ms, total_s, samples, env
plus `partial: true` when the run was interrupted, and any per-step series a stage
records besides (doc_len: the target positions the step trained, summed over its documents;
graph_nodes, ...). shared/schema.py checks a file against that shape.

Readers see: step time = median of step_ms after the first 10 steps (they fill caches and memory);
loss = mean of the last 100 losses (at batch size 1 one step's loss is one name: noise).
"""

import math
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

from shared.errors import UserError, stopped
from shared.log import log_line, say
from shared.saving import partial_path, signals_held, write_json_atomic, write_or_rescue

SETTLING_STEPS = 10  # the first steps, left out of a run's median step time
LOSS_WINDOW = 100
ETA_AFTER_S = 60  # a run expected to take longer than this prints the time left on each line


def median_step_ms(step_ms: list[float], skip: int = SETTLING_STEPS) -> float:
    """Median step time after the first `skip` steps (all steps if the run has no more)."""
    timed = step_ms[skip:] or step_ms
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
    return names, statistics.fmean(positions[SETTLING_STEPS:] or positions) * 1000.0 / ms


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
        "median_cpu_ms": median_step_ms(results["cpu_ms"]) if results.get("cpu_ms") else None,
        "total_s": results["total_s"],
        "final_loss": final_loss(results["losses"]),
        "device": results["env"]["device"],
        "interpreter": results["env"].get("interpreter", False),
    }


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
        last = self.config.get("stop_after", self.config["steps"])  # (--stop-after: the run ends there)
        line = log_line(step, last, loss, seconds * 1000.0)
        remaining = self.total_s / step * (last - step)
        if self.total_s + remaining > ETA_AFTER_S:  # a long run says when it will end
            line += f" | eta {remaining // 60:.0f}m{remaining % 60:02.0f}s"
        say(line)

    def record_steps(self, losses: list[float], seconds: float, **series: list) -> None:
        """Several steps done by one piece of work that took `seconds`: each is logged with an equal
        share of it, and the run's total grows by that work, not by the printing of their log."""
        total_s = self.total_s + seconds
        for step, loss in enumerate(losses):
            self.record(loss, seconds / len(losses), **{key: values[step] for key, values in series.items()})
        self.total_s = total_s

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
        """The run's total time counts from here (after the program's set-up)."""
        self.started = time.perf_counter()

    def finish(self, samples: list[str], where: str | os.PathLike | None = None) -> dict:
        """Write the complete results file (to `where` if it was written already) and print the
        two headline numbers; returns the results."""
        results = self.results(samples)
        where = where or write_json_atomic(self.out, results)
        summary = summarize(results)
        tokens = f", {rate(summary['tokens_per_s'])} tokens/s" if summary["tokens_per_s"] else ""
        steps = len(self.losses)
        median = f"median {summary['median_step_ms']:.2f} ms/step"
        timed = (f"{median} after the first {SETTLING_STEPS} steps" if steps > SETTLING_STEPS else
                 f"{median} over all {steps} steps (none left out)")
        say(f"{self.stage}: {timed} ({rate(summary['names_per_s'])} names/s{tokens}), total "
            f"{summary['total_s']:.1f} s, mean loss of the last {min(steps, LOSS_WINDOW)} steps "
            f"{summary['final_loss']:.4f} -> {where}")
        return results

    def __enter__(self) -> "TrainingRun":
        self.started = time.perf_counter()
        self._ctrl_c = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._ctrl_c = signal.signal(signal.SIGINT, stop_once)  # (given back when training ends)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Whatever stops the training -- Ctrl-C, SIGTERM, a loss gone NaN, an error -- the steps
        done so far are written, marked partial (write_json_atomic holds a second Ctrl-C until
        they are on disk); then the run stops as it would have, saying where they are."""
        if self._ctrl_c is not None and signal.getsignal(signal.SIGINT) is stop_once:  # no Ctrl-C came
            signal.signal(signal.SIGINT, self._ctrl_c)  # trained, or stopped otherwise: Ctrl-C as before
        if exc_type is None or not self.losses:
            return False
        with signals_held():  # SIGTERM and SIGHUP land after the write
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


def stop_once(signum, frame):
    """Ctrl-C while training: stop, once. Further presses then do nothing, so a second one, a few
    microseconds later, cannot stop the writing of the steps done (a Python no-op, not SIG_IGN:
    a press caught by Python and not yet handled would then be printed as "Signal 2 ignored")."""
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    raise KeyboardInterrupt


def rate(per_second: float) -> str:
    """A rate for the last line: whole numbers with commas, three significant digits below 100
    (the interpreter trains a few names a second: "0 names/s" said nothing)."""
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"
