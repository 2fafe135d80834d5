"""The check runs a learner's code in a process of its own, so that nothing the code does can
break the checker: a crash, an endless loop, a wild store, `sys.exit`, megabytes of prints.

`run_jobs` (the checker's side) starts `check.py --child`, which runs the jobs one by one and
writes a line to a results file when each starts and when each ends. The checker watches that
file: a job that runs past the time limit has its process stopped; a process that dies inside
a job (a signal, `os._exit`) is reported for that job; either way a fresh process takes the
jobs that are left. The child runs under a memory limit where the system has one (Linux).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHECK_PY = Path(__file__).resolve().parent.parent / "check.py"
MEMORY_LIMIT_GIB = 4
STARTUP_LIMIT_S = 180  # to import NumPy, PyTorch and Triton, on a slow or busy machine
POSIX = os.name == "posix"


def run_jobs(jobs: list[dict], time_limit: float, on_result=None) -> list[dict]:
    """Run `jobs` (run.py's job dicts) in child processes; each result a dict with 'status' and
    'line'. `on_result(index, result)` is called as each one ends."""
    results: list[dict | None] = [None] * len(jobs)
    first = 0
    while first < len(jobs):
        for offset, result in _one_child(jobs[first:], time_limit):
            results[first + offset] = result
            if on_result:
                on_result(first + offset, result)
        while first < len(jobs) and results[first] is not None:
            first += 1
    return results


def _one_child(jobs: list[dict], time_limit: float):
    """Yield (index, result) from one child process, until it ends or is stopped."""
    with tempfile.TemporaryDirectory(prefix="microgpt-check-") as folder:
        jobs_file, results_file = Path(folder) / "jobs.json", Path(folder) / "results.jsonl"
        jobs_file.write_text(json.dumps(jobs))
        results_file.touch()
        process = subprocess.Popen(
            [sys.executable, str(CHECK_PY), "--child", str(jobs_file), str(results_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=POSIX, creationflags=0 if POSIX else subprocess.CREATE_NEW_PROCESS_GROUP)
        tail = _Tail(process.stdout)
        started_at, running, done, pending = time.monotonic(), None, set(), ""
        try:
            with open(results_file, encoding="utf-8") as events:
                while True:
                    ended = process.poll() is not None
                    pending += events.read()
                    *lines, pending = pending.split("\n")  # a line the child did not finish writing waits
                    for line in lines:
                        event = json.loads(line)
                        if "start" in event:
                            running, started_at = event["start"], time.monotonic()
                        else:
                            index = event.pop("done")
                            done.add(index)
                            running = None
                            yield index, event
                    if ended:
                        break
                    limit = time_limit if running is not None else STARTUP_LIMIT_S
                    if time.monotonic() - started_at > limit:
                        _stop(process)
                        if running is None:
                            yield len(done), _failure(jobs[len(done)], "the checker's process did not start within "
                                                                       f"{STARTUP_LIMIT_S} s", tail.text())
                        else:
                            yield running, {"status": "not yet", "line": _line(
                                jobs[running], f"your code did not finish within {time_limit:g} s (an endless loop? "
                                               f"check.py --time-limit SECONDS allows more)")}
                        return
                    time.sleep(0.02)
        finally:
            if process.poll() is None:
                _stop(process)
            tail.close()
        if running is not None:
            yield running, {"status": "not yet", "line": _line(jobs[running], _death(process.returncode, tail.text()))}
        elif len(done) < len(jobs):
            yield len(done), _failure(jobs[len(done)], f"the checker's process ended (exit status "
                                                       f"{process.returncode}) before it began", tail.text())


def _line(job: dict, what: str) -> str:
    return f"not yet: {job.get('number', '')} -- {what}"


def _failure(job: dict, what: str, output: str) -> dict:
    last = [line for line in output.strip().splitlines() if line.strip()][-1:] or [""]
    return {"status": "error", "line": f"error: {job.get('number', '')} -- {what}"
                                      + (f" ({last[0].strip()})" if last[0] else "")
                                      + "; python exercises/check.py --doctor says what is missing"}


def _death(returncode: int, output: str) -> str:
    """What a child's end in the middle of a job means, in one line."""
    last = [line.strip() for line in output.strip().splitlines() if line.strip()][-1:]
    said = f"; it said: {last[0]}" if last else ""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        what = {"SIGSEGV": "crashed the process (a segmentation fault: memory outside it was touched)",
                "SIGABRT": "made the process abort (a C library found its memory corrupted, or abort() was called)",
                "SIGKILL": f"had the process killed (out of memory? the check allows {MEMORY_LIMIT_GIB} GiB)",
                "SIGBUS": "crashed the process (a bus error: a bad memory access)"}.get(name, f"ended the process "
                                                                                            f"with {name}")
        return f"your code {what}{said}"
    return (f"your code ended the process (exit status {returncode}) before the check finished: an answer returns "
            f"its result; it does not call os._exit or exit(){said}")


def _stop(process: subprocess.Popen) -> None:
    try:
        if POSIX:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


class _Tail:
    """Reads a child's output in a thread, keeping its last 4,000 characters."""

    def __init__(self, stream):
        self.stream, self.buffer = stream, b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for chunk in iter(lambda: self.stream.read1(65536), b""):
            self.buffer = (self.buffer + chunk)[-4000:]

    def text(self) -> str:
        self.thread.join(timeout=1)
        return self.buffer.decode("utf-8", "replace")

    def close(self):
        self.thread.join(timeout=1)
        self.stream.close()


# --------------------------------------------------------------------------- the child


def child_main(jobs_file: str, results_file: str) -> int:
    """The child: limits, then each job, one results line when it starts and one when it ends."""
    _limit_memory()
    jobs = json.loads(Path(jobs_file).read_text())
    import chapters  # noqa: F401  (the repository on the path; Triton in its interpreter, bounds-checked)

    from .run import run_job

    with open(results_file, "a", encoding="utf-8") as out:
        for index, job in enumerate(jobs):
            out.write(json.dumps({"start": index}) + "\n")
            out.flush()
            result = run_job(job)
            out.write(json.dumps({"done": index, **result}) + "\n")
            out.flush()
    return 0


def _limit_memory() -> None:
    try:
        import resource

        limit = MEMORY_LIMIT_GIB * 2**30
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard if hard != resource.RLIM_INFINITY else limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file
    except (ImportError, ValueError, OSError, AttributeError):  # Windows, or limits we may not set: no limit
        pass
