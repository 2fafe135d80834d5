"""The one exception type for bad input.

A `UserError` carries a single line that names the problem and the fix. `shared.cli.run`
prints it without a traceback and exits with status 1.
"""


class UserError(Exception):
    """Bad input or a failed run the user can fix; the message is shown as one line."""
