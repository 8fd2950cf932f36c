"""User-facing errors.

Anything a user can cause (a bad file, a misspelt config key, a broken model directory) raises
:class:`UserError` with a one-line message that names the file, line or key. The CLI prints it
without a traceback; programming errors keep their tracebacks.
"""


class UserError(Exception):
    """A mistake in the user's input, reported as one line."""
