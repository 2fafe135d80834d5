"""The one exception type for bad input.

A `UserError` carries a single line that names the problem and the fix. `shared.cli.run`
prints it without a traceback and exits with status 1.
"""


class UserError(Exception):
    """Bad input or a failed run the user can fix; the message is shown as one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill`, `timeout` and container stops send), handled like Ctrl-C."""


def stopped(exc_type, what: str) -> KeyboardInterrupt:
    """The interrupt to re-raise with one line that says what was kept: `interrupted ...` or `terminated ...`."""
    word = "terminated" if issubclass(exc_type, Terminated) else "interrupted"
    return (Terminated if issubclass(exc_type, Terminated) else KeyboardInterrupt)(f"{word} {what}")
