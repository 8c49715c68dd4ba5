"""KeyboardInterrupt deferred across the few lines that acquire a host resource and
record it.

A Ctrl-C can land between any two bytecodes of the main thread: CPython's C-level
handler only notes the signal, and the Python-level handler (``default_int_handler``,
which raises ``KeyboardInterrupt``) runs at the next bytecode boundary of the main
thread, never in another thread.  Between ``os.eventfd()`` returning and the descriptor
being stored where ``shutdown`` finds it, that exception would lose the descriptor for
good (an int has no finaliser); between a thread starting and its record, the thread.

So the PAL installs its own SIGINT handler, which behaves as ``default_int_handler``
except inside a *critical section* of the main thread: there it only notes the
interrupt, and the section raises ``KeyboardInterrupt`` as it ends, once what it
acquired is recorded.  A section holds no blocking wait (a Ctrl-C must still stop one),
so an interrupt is deferred for microseconds at most.  Sections on other threads cost
one comparison: no signal handler runs there.

Signal masks (``pthread_sigmask``) cannot do this: a signal blocked in the main thread
is delivered to another thread instead, and its handler still runs in the main thread
at the next bytecode.  The handler is installed only over ``default_int_handler`` (a
program's own SIGINT handler is left alone, and then sections defer nothing), from the
main thread, while a host is open.

Usage, with nothing between ``enter`` and ``try``::

    entered = enter()
    try:
        ...acquire and record...
    finally:
        leave(entered)
"""

from __future__ import annotations

import signal
import threading
from _thread import get_ident
from types import FrameType

_MAIN = threading.main_thread().ident
# Touched by the main thread only (its sections, and the handler, which runs there).
_depth = [0]
_pending = [False]
# Guarded by _lock: hosts open that asked for the handler.
_lock = threading.Lock()
_users = [0]


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _depth[0]:
        _pending[0] = True
        return
    raise KeyboardInterrupt


def enter() -> bool:
    """Open a critical section; pass the result to ``leave``."""
    if get_ident() != _MAIN:
        return False
    _depth[0] += 1
    return True


def leave(entered: bool) -> None:
    """Close a critical section, and raise a ``KeyboardInterrupt`` it deferred."""
    if entered:
        _depth[0] -= 1
        if _pending[0] and not _depth[0]:
            _pending[0] = False
            raise KeyboardInterrupt


def install() -> bool:
    """Put the deferring handler in place (main thread only); True if this call counts
    as a user, to be matched by ``uninstall``."""
    if get_ident() != _MAIN:
        return False
    with _lock:
        current = signal.getsignal(signal.SIGINT)
        if current is not _on_sigint:
            if current is not signal.default_int_handler:
                return False
            signal.signal(signal.SIGINT, _on_sigint)
        _users[0] += 1
        return True


def uninstall() -> None:
    """Give back the default handler once the last user is gone (main thread only: a
    host shut down elsewhere leaves the handler, which without sections is the default)."""
    with _lock:
        _users[0] = max(0, _users[0] - 1)
        if _users[0] or get_ident() != _MAIN:
            return
        if signal.getsignal(signal.SIGINT) is _on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def installed() -> bool:
    return signal.getsignal(signal.SIGINT) is _on_sigint


critical_enter = enter
critical_leave = leave
