"""The one exception type for bad input.

A `UserError` carries a single line that names the problem and the fix. `shared.cli.run`
prints it without a traceback and exits with status 1.
"""


class UserError(Exception):
    """Bad input or a failed run the user can fix; the message is shown as one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill`, `timeout` and container stops send), handled like Ctrl-C."""

    word, status = "terminated", 143


class HungUp(Terminated):
    """SIGHUP (a closed terminal, a dropped ssh session), handled like Ctrl-C."""

    word, status = "stopped (the terminal hung up)", 129


def stopped(exc_type, what: str) -> KeyboardInterrupt:
    """The interrupt to re-raise with one line that says what was kept: `interrupted ...`,
    `terminated ...` or `stopped (the terminal hung up) ...`, of the same kind as `exc_type`."""
    kind = exc_type if issubclass(exc_type, Terminated) else KeyboardInterrupt
    return kind(f"{getattr(kind, 'word', 'interrupted')} {what}")
