"""Holding a Ctrl-C back for a few lines, in the processes that drive others (the
benchmark's and the workloads' parents): a Python-level SIGINT handler, not a signal mask,
since a mask holds the signal back in the calling thread only and CPython runs the handler
in the main thread whichever thread the signal reaches."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back for the block, so that it comes before or after it, never in the
    middle (between starting a child and recording it, say).  A held signal is raised again
    once the previous handler is back, so it does what it would have done (nothing, if
    SIGINT was ignored).  Off the main thread, where no handler can be set, it holds
    nothing back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            signal.raise_signal(signal.SIGINT)
