"""The log: SPEC.md's line for each step, and a stdout that cannot take it.

    step    1 / 1000 | loss 3.3660 | 52.31 ms

A run prints through `say`. When stdout is gone (`| head` closed it, `> /dev/full`), the run
goes on without its log: the results file still gets every step, and `stdout_closed` tells
the runner why, to say so at the end.
"""

import errno
import os
import sys


def log_line(step: int, num_steps: int, loss: float, ms: float) -> str:
    """SPEC.md log line; `step` is 1-based."""
    return f"step {step:4d} / {num_steps:4d} | loss {loss:.4f} | {ms:.2f} ms"


def say(line: str = "", **kwargs) -> None:
    """print(), except that a stdout that cannot take it (`| head` closed it, `> /dev/full`) does
    not stop the run: from then on the log goes nowhere, and the results file still gets every step."""
    global stdout_closed
    if stdout_closed:
        return
    try:
        print(line, flush=True, **kwargs)
    except OSError as err:  # a closed pipe, a full device (`> /dev/full`), a terminal gone: the log is lost
        if err.errno not in WHY_LOST:
            raise
        stdout_closed = WHY_LOST[err.errno]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        os.close(devnull)


WHY_LOST = {errno.EPIPE: "its reader closed it early (broken pipe)",
            errno.ENOSPC: "the device it goes to is full (no space left)",
            errno.EIO: "the terminal it went to is gone (input/output error)"}
stdout_closed: str | None = None  # why the log was lost, once it was
