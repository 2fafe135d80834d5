"""The judge's side of the answer's process: starting it, asking it, stopping it.

A learner's code never runs in the checker's process. `run_jobs` starts one helper process
that loads NumPy, PyTorch, Triton and the chapters once (checker/answer.py's zygote), and for
each check asks it to fork a fresh answer's process: a session of its own, a memory limit, its
prints to a file. The judge talks to it through a socket (checker/wire.py: plain data only),
with a time budget for the whole check; when the check is over, or the budget is spent, or the
process dies, the judge kills its whole session (whatever the answer started goes with it) and
says in one line what happened: a signal, an exit, an endless loop, memory.

What this promises: nothing an answer does reaches the checker's process, its references or
its verdict, and every check ends, in one line, within its time limit. What it does not: the
answer's process runs as the learner, with the learner's files; it is kept from the solutions,
the checker and the chapters' files by an audit hook, which stops mistakes and shortcuts, not a
determined attack on the machine.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import wire
from .answer import FAILED
from .harness import Ended

CHECK_PY = Path(__file__).resolve().parent.parent / "check.py"
MEMORY_LIMIT_GIB = 4
STARTUP_LIMIT_S = 180  # to load NumPy, PyTorch, Triton and the chapters, on a slow or busy machine
PRINTED_SHOWN = 4000  # characters of what an answer printed, shown after the verdict


class CheckerFailed(Exception):
    """The checker's own process could not start (a missing package, a broken installation)."""


class Zygote:
    """The process that has loaded what answers need and forks one answer's process per check."""

    def __init__(self, stages: list[str]):
        self.sock, theirs = socket.socketpair()
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, str(CHECK_PY), "--zygote", str(theirs.fileno()), *stages], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT, start_new_session=True)
        theirs.close()
        self.pending = b""

    def request(self, message: dict, fds=(), deadline: float | None = None) -> dict:
        try:
            socket.send_fds(self.sock, [json.dumps(message).encode() + b"\n"], list(fds))
            while b"\n" not in self.pending:
                if deadline is not None:
                    wait = deadline - time.monotonic()
                    if wait <= 0 or not select.select([self.sock], [], [], wait)[0]:
                        raise CheckerFailed(f"the checker's process did not start within {STARTUP_LIMIT_S} s")
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise CheckerFailed(self.why_ended())
                self.pending += chunk
        except OSError:
            raise CheckerFailed(self.why_ended()) from None
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def why_ended(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.output.seek(0)
        said = [line.strip() for line in self.output.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return f"the checker's process ended (exit status {code}) before it began" + (f" ({said[-1]})" if said else "")

    def close(self) -> None:
        self.sock.close()  # it ends when it reads the end of its socket (or, still loading, is killed)
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            _kill_session(self.process.pid)
            self.process.wait()
        self.output.close()


class AnswerProcess:
    """One answer's process, for one check: `request` sends a message and returns the reply,
    spending the check's time budget; `close` kills its session."""

    def __init__(self, zygote: Zygote, time_limit: float):
        self.zygote, self.time_limit, self.budget = zygote, time_limit, time_limit
        self.output = tempfile.TemporaryFile()
        self.sock, theirs = socket.socketpair()
        try:
            reply = zygote.request({"fork": True}, fds=[theirs.fileno(), self.output.fileno()],
                                   deadline=time.monotonic() + STARTUP_LIMIT_S)
        finally:
            theirs.close()
        self.pid, self.ended = reply["pid"], None
        try:
            wire.receive(self.sock, deadline=time.monotonic() + STARTUP_LIMIT_S)  # {"ready": pid}: in its session
        except (wire.Closed, wire.Timeout, wire.Unreadable, OSError):
            raise CheckerFailed(f"the answer's process did not start: {self.death(self.stop())}") from None

    def request(self, message: dict):
        if self.ended is not None:
            raise Ended(self.ended)
        started = time.monotonic()
        try:
            wire.send(self.sock, message)
            return wire.receive(self.sock, deadline=started + max(self.budget, 0.0))
        except wire.Timeout:
            self.stop()
            self.ended = (f"your code did not finish within {self.time_limit:g} s (an endless loop? check.py "
                          f"--time-limit SECONDS allows more)")
        except wire.Unreadable as err:
            self.stop()
            self.ended = f"your code sent the check something that is not plain data ({err})"
        except (wire.Closed, OSError):
            self.ended = self.death(self.stop(grace=2.0))
        finally:
            self.budget -= time.monotonic() - started
        raise Ended(self.ended)

    def stop(self, grace: float = 0.0) -> int | None:
        """The answer's exit status: after `grace` seconds to end by itself (it closed its end),
        its session (it, and whatever it started) is killed."""
        status = self._wait(grace) if grace else None
        _kill_session(self.pid, group_only=status is not None)  # (a reaped pid may be another's; its group not)
        return self._wait(30) if status is None else status

    def _wait(self, seconds: float) -> int | None:
        try:
            return self.zygote.request({"wait": self.pid, "timeout": seconds},
                                       deadline=time.monotonic() + seconds + 30)["status"]
        except CheckerFailed:
            return None

    def close(self) -> None:
        """The check is over: kill the answer's session (the zygote reaps it)."""
        if self.ended is None:
            self.ended = "the check is over"
            _kill_session(self.pid)
        self.sock.close()

    def printed(self) -> tuple[str, int]:
        """What the answer printed: its first PRINTED_SHOWN characters, and how many in all."""
        self.output.seek(0)
        head = self.output.read(PRINTED_SHOWN * 4).decode("utf-8", "replace")[:PRINTED_SHOWN]
        size = os.fstat(self.output.fileno()).st_size  # characters, when they are ASCII
        return head, len(head) if len(head) < PRINTED_SHOWN else max(size, len(head))

    def death(self, status: int | None) -> str:
        """What the end of the answer's process in the middle of a check means, in one line."""
        head, _ = self.printed()
        last = [line.strip() for line in head.strip().splitlines() if line.strip()][-1:]
        said = f"; it said: {last[0]}" if last else ""
        if status is not None and status < 0:
            name = signal.Signals(-status).name
            what = {"SIGSEGV": "crashed the process (a segmentation fault: memory outside it was touched)",
                    "SIGABRT": "made the process abort (a C library found its memory corrupted, or abort() was "
                               "called)",
                    "SIGKILL": f"had the process killed (out of memory? the check allows {MEMORY_LIMIT_GIB} GiB)",
                    "SIGBUS": "crashed the process (a bus error: a bad memory access)",
                    "SIGXFSZ": "printed more than the check keeps (64 MiB) and was stopped"}.get(
                name, f"ended the process with {name}")
            return f"your code {what}{said}"
        if status == FAILED:
            return f"the answer's process failed{said}: this is a bug in the checker; please report it"
        return (f"your code ended the process (exit status {status}) before the check finished: an answer returns "
                f"its result; it does not call os._exit or exit(){said}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _kill_session(pid: int, group_only: bool = False) -> None:
    for kill in (os.killpg,) if group_only else (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Session:
    """The zygote for a run of checks, started when the first check needs an answer's process."""

    def __init__(self, stages: list[str], time_limit: float):
        self.stages, self.time_limit, self.zygote = stages, time_limit, None

    def start(self) -> None:
        if self.zygote is None:
            self.zygote = Zygote(self.stages)

    def answer(self, time_limit: float | None = None) -> AnswerProcess:
        self.start()
        return AnswerProcess(self.zygote, time_limit or self.time_limit)

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()


def run_jobs(jobs: list[dict], time_limit: float, on_result=None) -> list[dict]:
    """Run `jobs` (run.py's job dicts), each answer in its own process; each result a dict with
    'status' and 'line'. `on_result(index, result)` is called as each one ends."""
    from .catalog import BY_NUMBER, STAGES
    from .run import run_job

    written = [BY_NUMBER[job["number"]] for job in jobs if job.get("kind") == "check"
               and BY_NUMBER[job["number"]].kind == "write"]
    stages = sorted({stage for exercise in written for stage in STAGES[exercise.chapter]})
    session = Session(stages, time_limit)
    results = []
    try:
        if written:
            session.start()  # it loads while the checker loads its references
        for index, job in enumerate(jobs):
            result = run_job(job, session)
            results.append(result)
            if on_result:
                on_result(index, result)
    finally:
        session.close()
    return results
