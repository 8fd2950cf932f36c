"""A wall-clock deadline that cuts a long computation short: what keeps ``--max-minutes`` a promise
when a validation or the final test scoring would run past it.

``time_limit(deadline)`` arms the process's real-time alarm (SIGALRM) to raise
:class:`DeadlineReached` in the main thread when ``time.monotonic()`` reaches ``deadline``; the
exception surfaces between two Python bytecodes, after the tensor operation running at that moment.
Only computations that write nothing are run under it (scoring, never checkpointing). Where there is
no alarm (not the main thread, or a platform without SIGALRM) the computation runs to its end.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DeadlineReached(BaseException):
    """The deadline of ``time_limit`` passed before the computation finished. A BaseException, so that
    an ``except Exception`` on the way (a logging handler's) does not swallow it."""


LONGEST = 1e7  # seconds (about 4 months): an alarm further away than this is no limit at all


def can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(deadline: float | None) -> Iterator[None]:
    """Run the block, raising :class:`DeadlineReached` in it once ``deadline`` (a ``time.monotonic()``
    value) has passed; None: no limit. Should something swallow the exception (a bare ``except`` in a
    library), the alarm fires again every 50 ms until the block ends, and the block ends with it."""
    if deadline is None or not can_interrupt() or deadline - time.monotonic() > LONGEST:
        yield
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineReached
    fired = False

    def alarm(signum, frame):
        nonlocal fired
        fired = True
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # again and again, should something swallow it
        raise DeadlineReached

    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, remaining)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    if fired:
        raise DeadlineReached
