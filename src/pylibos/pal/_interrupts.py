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
at the next bytecode.  The handler is installed from the main thread, while a host is
open, over ``default_int_handler`` or a program's own Python handler (which it then
calls, deferred as the exception is).  The program does not see it: while it is in place
``signal.getsignal`` and ``signal.signal`` give the program's handler (or
``default_int_handler``) and installing one keeps the deferral around it, so a program
that installs its own, or puts the default back, sees what it sees natively (asyncio's
runner installs its Ctrl-C handling only over the default) and leaves no section open.

Usage, with nothing between ``enter`` and ``try``::

    entered = enter()
    try:
        ...acquire and record...
    finally:
        leave(entered)

A *marked* section costs less (about ten bytecodes instead of forty, on any thread), for
hot paths (a thread start, an eventfd's open, close, read and write; ``pylibos.pal``
exports it as ``marks_critical_sections``, ``critical_owed`` and ``critical_deliver``).
Its function is registered with ``@marks_sections`` and the section is a local variable
of that frame, ``_pal_critical``, true from its assignment to the ``finally`` that clears
it (a function with a closure cell or a generator cannot mark one)::

    @marks_sections
    def fn(...):
        _pal_critical = True
        try:
            ...acquire and record...
        finally:
            _pal_critical = False
            if owed[0]:
                deliver()

A function registered with ``@marks_sections_from_entry`` is in a section from its first
bytecode until its marker is first stored (a store of False ends it: then ``owed`` is
tested, as above): for a replacement of a C function, whose caller counts on no interrupt
landing before it has recorded anything (``threading.Thread.start`` and the thread-start
hook), with its first store the first line of its ``try``.

The handler, which runs in the main thread and is given the main thread's current
frame, looks for a registered frame with the marker set on that stack: only the main
thread's sections defer, so another thread's marker costs it two stores and a test.
That search (a few frames, a set lookup each) is paid only when a SIGINT comes.  The
marker is cleared before ``owed`` is tested: an interrupt landing between the two is
raised by the handler itself, which then drops what was owed (one Ctrl-C, as two
signals before a handler runs are one natively).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from _thread import get_ident
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_MAIN = threading.main_thread().ident
# Touched by the main thread only (its sections, and the handler, which runs there):
# one item per ``enter`` not yet left.
_depth: list[None] = []
# The handler an interrupt in a section is owed to (falsy: none).  Set only by the
# handler (main thread); read by any thread that ends a marked section.
owed: list[Any] = [False]
# Functions whose frames may hold the marker of a section (see the module docstring).
MARK = "_pal_critical"
_MARKING: set[CodeType] = set()
# Those of them in a section from their first bytecode until the marker is stored.
_FROM_ENTRY: set[CodeType] = set()
# Guarded by _lock: hosts open that asked for the handler.
_lock = threading.Lock()
_users = [0]

_signal_signal = signal.signal
_signal_getsignal = signal.getsignal


def _after_fork_in_child() -> None:
    """In a child made by ``os.fork``, in its one thread: that thread is the child's
    main thread (its signal handlers run there) even if it was not the parent's, whose
    sections and owed interrupt are then no concern of the child; and ``_lock`` may
    have been held by a parent's thread the child does not have."""
    global _MAIN, _lock
    if get_ident() != _MAIN:
        _depth.clear()
        owed[0] = False
        _MAIN = get_ident()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def marks_sections(fn: F) -> F:
    """Register ``fn`` as opening marked sections (see the module docstring)."""
    _MARKING.add(fn.__code__)
    return fn


def marks_sections_from_entry(fn: F) -> F:
    """Register ``fn`` as in a section from its first bytecode until its marker is first
    stored (see the module docstring)."""
    _FROM_ENTRY.add(fn.__code__)
    return marks_sections(fn)


def _marked(frame: FrameType | None) -> bool:
    """Whether a frame from ``frame`` outwards is inside a marked section."""
    while frame is not None:
        code = frame.f_code
        if code in _MARKING and frame.f_locals.get(MARK, code in _FROM_ENTRY):
            return True
        frame = frame.f_back
    return False


def _in_section(frame: FrameType | None) -> bool:
    return bool(_depth) or _marked(frame)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _in_section(frame):
        owed[0] = _raise
        return
    owed[0] = False
    raise KeyboardInterrupt


def _raise(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Deferring:
    """A program's own SIGINT handler, run at once outside a section and as the section
    ends inside one."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[int, FrameType | None], Any]) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if _in_section(frame):
            owed[0] = self.handler
            return
        owed[0] = False
        self.handler(signum, frame)


def _ours(handler: object) -> bool:
    return handler is _on_sigint or isinstance(handler, _Deferring)


def _shown(handler: Any) -> Any:
    """What the program sees for an installed handler."""
    if handler is _on_sigint:
        return signal.default_int_handler
    if isinstance(handler, _Deferring):
        return handler.handler
    return handler


def _deferring(handler: Any) -> Any:
    """What to install for a handler the program gives."""
    if handler is signal.default_int_handler:
        return _on_sigint
    if callable(handler) and not _ours(handler):
        return _Deferring(handler)
    return handler


@functools.wraps(_signal_getsignal)
def _getsignal(signalnum: Any) -> Any:
    return _shown(_signal_getsignal(signalnum))


@functools.wraps(_signal_signal)
def _signal(signalnum: Any, handler: Any) -> Any:
    if signalnum == signal.SIGINT and _users[0] and get_ident() == _MAIN:
        handler = _deferring(handler)
    return _shown(_signal_signal(signalnum, handler))


def enter() -> bool:
    """Open a critical section; pass the result to ``leave``."""
    if get_ident() != _MAIN:
        return False
    _depth.append(None)
    return True


def leave(entered: bool) -> None:
    """Close a critical section, and raise a ``KeyboardInterrupt`` it deferred."""
    if entered:
        _depth.pop()
        if owed[0] and not _depth and not _marked(sys._getframe(1)):
            handler, owed[0] = owed[0], False
            handler(signal.SIGINT, None)


def deliver() -> None:
    """At the end of a marked section, with an interrupt owed: run its handler (raise
    the ``KeyboardInterrupt``) unless this is not the main thread, or the main thread is
    still inside another section."""
    handler = owed[0]
    if not handler or get_ident() != _MAIN or _depth or _marked(sys._getframe(1)):
        return
    owed[0] = False
    handler(signal.SIGINT, None)


def install() -> bool:
    """Put the deferring handler in place (main thread only); True if this call counts
    as a user, to be matched by ``uninstall``."""
    if get_ident() != _MAIN:
        return False
    with _lock:
        current = _signal_getsignal(signal.SIGINT)
        if not _ours(current):
            if not callable(current):
                return False  # ignored, the process's default, or set from C
            _signal_signal(signal.SIGINT, _deferring(current))
        if signal.signal is _signal_signal:
            signal.signal = _signal
        if signal.getsignal is _signal_getsignal:
            signal.getsignal = _getsignal
        _users[0] += 1
        return True


def uninstall() -> None:
    """Give back the default handler once the last user is gone (main thread only: a
    host shut down elsewhere leaves the handler, which without sections is the default)."""
    with _lock:
        _users[0] = max(0, _users[0] - 1)
        if _users[0] or get_ident() != _MAIN:
            return
        current = _signal_getsignal(signal.SIGINT)
        if _ours(current):
            _signal_signal(signal.SIGINT, _shown(current))
        if signal.signal is _signal:
            signal.signal = _signal_signal
        if signal.getsignal is _getsignal:
            signal.getsignal = _signal_getsignal


# Synchronous faults: blocked, they kill the process instead of reaching a handler.
_FAULTS = {
    signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP,
    signal.SIGSYS, signal.SIGABRT,
}  # fmt: skip


def quiet_thread() -> None:
    """Block in the calling thread, one of the LibOS's or the PAL's own (a worker, a
    handshake helper), every signal but the synchronous faults.  The kernel hands a
    process-wide signal to any thread that does not block it: these threads, which the
    program does not know of, would take a signal the program blocks in its own threads
    (``pthread_sigmask``) and waits for with ``sigwait``, and its Python handler would
    then run in the main thread regardless.  Python handlers run in the main thread
    whichever thread the signal reaches, so nothing else changes."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - _FAULTS)


def installed() -> bool:
    return _ours(_signal_getsignal(signal.SIGINT))


critical_enter = enter
critical_leave = leave
marks_critical_sections = marks_sections
marks_critical_sections_from_entry = marks_sections_from_entry
critical_owed = owed
critical_deliver = deliver
