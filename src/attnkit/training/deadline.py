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


class DeadlineReached(Exception):
    """The deadline of ``time_limit`` passed before the computation finished."""


def can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(deadline: float | None) -> Iterator[None]:
    """Run the block, raising :class:`DeadlineReached` in it once ``deadline`` (a ``time.monotonic()``
    value) has passed; None: no limit."""
    if deadline is None or not can_interrupt():
        yield
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineReached

    def alarm(signum, frame):
        raise DeadlineReached

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, remaining)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
