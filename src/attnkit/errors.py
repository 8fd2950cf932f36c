"""User-facing errors.

Anything a user can cause (a bad file, a misspelt config key, a broken model directory) raises
:class:`UserError` with a one-line message that names the file, line or key. The CLI prints it
without a traceback; programming errors keep their tracebacks.
"""


class UserError(Exception):
    """A mistake in the user's input, reported as one line."""


def quoted(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: what an error line quotes of a value it was handed,
    which may be a megabyte of a stranger's file."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(message: str, limit: int = 400) -> str:
    """``message`` on one line of at most ``limit`` characters (the last guard before printing)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
