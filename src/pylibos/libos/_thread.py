"""LibOS threads and the thread table (Gramine's ``libos_thread.c``)."""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..pal import ShutDownError

if TYPE_CHECKING:
    from ..pal import PalThread
    from ._event import PollableEvent


class ThreadFailed(Exception):
    """Raised by ``LibOSThread.join`` when the thread ended with an exception."""


class LibOSThread:
    """A thread the LibOS knows: a tid, a pollable event to sleep on, and its outcome.

    A failure (an exception escaping the thread's function) is kept for ``join``.  One
    nobody looks at (no ``join``, no ``exception``) before this object goes is reported
    through ``threading.excepthook``, as CPython reports a failed thread: never lost.
    """

    # Class defaults: what most threads never change costs no store when one is made.
    _error: BaseException | None = None
    _error_seen = False
    # Set for a thread started through ``_thread.start_new_thread``: a failure is
    # reported to ``sys.unraisablehook`` against this object, as the interpreter does.
    _unraisable: object = None
    # Set once made (``clone`` makes the thread first, then its event).
    event: PollableEvent = None  # type: ignore[assignment]
    # The host thread; joining it is joining this thread, since the LibOS's exit work
    # runs on it.  None for the main thread and adopted threads.
    _pal: PalThread | None = None

    # ``LibOS._clone`` builds a cloned thread in place: it stores what ``__init__`` does.
    def __init__(self, tid: int, name: str | None = None, started_by: object = None) -> None:
        self.tid = tid
        self._name = name
        # What the program started the thread with (``Thread._bootstrap`` for a
        # ``threading.Thread``): the name is taken from it when first asked for.
        self._started_by = started_by

    @property
    def name(self) -> str:
        """The name given to ``clone``; for a thread the program started, its
        ``threading.Thread``'s name; else ``thread-<tid>``."""
        name = self._name
        if name is not None:
            return name
        owner = getattr(self._started_by, "__self__", None)
        if isinstance(owner, threading.Thread):
            return owner.name
        return f"thread-{self.tid}"

    def _attach(self, pal: PalThread) -> None:
        self._pal = pal

    def _failed(self, exc: BaseException) -> None:
        # The first frame is the PAL thread's own (``PalThread._run``, which holds this
        # object as its tag); without it, nothing of the thread's exit work holds this
        # object through the traceback.
        tb = exc.__traceback__
        if tb is not None:
            exc.__traceback__ = tb.tb_next
        if self._unraisable is None:
            self._error = exc
            # Only now does the object need a finaliser: most threads never fail, and a
            # ``__del__`` costs a call into Python whenever one of them goes.
            self.__class__ = _FailedThread
        elif not isinstance(exc, SystemExit):  # which ends such a thread quietly
            report_unraisable(exc, self._unraisable)

    @property
    def exception(self) -> BaseException | None:
        """What the thread's function raised, once the thread has ended; else None."""
        if self._pal is not None and self._pal.is_alive():
            return None
        self._error_seen = True
        if self._error is None and self._pal is not None:
            return self._pal.exception  # started with reraise: the PAL thread kept it
        return self._error

    def is_alive(self) -> bool:
        return self._pal is not None and self._pal.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has.

        If the thread ended with an exception, that exception is raised here, chained to
        a ``ThreadFailed`` naming the thread, so a failure is never lost.
        """
        if self._pal is None:
            raise RuntimeError(f"thread {self.tid} ({self.name}) was not created by clone")
        if not self._pal.join(timeout):
            return False
        failure = self.exception
        if failure is not None:
            raise ThreadFailed(f"thread {self.tid} ({self.name}) failed") from failure
        return True

    def __repr__(self) -> str:
        pal = self._pal
        state = "not cloned" if pal is None else "running" if pal.is_alive() else "done"
        return f"<LibOSThread tid={self.tid} {self.name} {state}>"


class _FailedThread(LibOSThread):
    """A ``LibOSThread`` whose thread failed (``_failed`` makes it one): the failure,
    unless someone looked at it, is reported as the object goes."""

    def __del__(self) -> None:
        failure = self._error
        if failure is None or self._error_seen:
            return
        self._error_seen = True
        hook = getattr(threading, "excepthook", None)
        if hook is None:  # interpreter shutdown
            return
        args = threading.ExceptHookArgs((type(failure), failure, failure.__traceback__, self))
        with contextlib.suppress(Exception):
            hook(args)


def report_unraisable(exc: BaseException, function: object) -> None:
    """Report ``exc``, escaping a thread started with ``_thread.start_new_thread(function,
    ...)``, as the interpreter does."""
    assert UNRAISABLE_ARGS is not None
    if sys.version_info >= (3, 13):
        message, obj = f"Exception ignored in thread started by {function!r}", None
    else:
        message, obj = "Exception ignored in thread started by", function
    args = UNRAISABLE_ARGS((type(exc), exc, exc.__traceback__, message, obj))
    try:
        sys.unraisablehook(args)
    except BaseException:
        sys.__unraisablehook__(args)


class _Probe(Exception):
    pass


class _Dies:
    def __del__(self) -> None:
        raise _Probe


def _unraisable_args_type() -> Any:
    """``sys.UnraisableHookArgs``, which the interpreter does not name: taken from one
    unraisable exception raised for the purpose (others arriving meanwhile are passed
    on to the hook that was in place)."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        _Dies()
    finally:
        sys.unraisablehook = previous
    found = None
    for args in seen:
        if isinstance(args.exc_value, _Probe):
            found = type(args)
        else:
            previous(args)
    return found


UNRAISABLE_ARGS: Any = _unraisable_args_type()
"""``sys.UnraisableHookArgs``, or None where it could not be had."""


def _calling_thread_name() -> str:
    """The calling thread's name in ``threading``, without making it a ``_DummyThread``:
    ``threading.current_thread()`` registers one for a thread ``threading`` does not
    know (one started with ``_thread`` or by C code), and nothing ever removes it."""
    ident = threading.get_ident()
    known = getattr(threading, "_active", {}).get(ident)
    return known.name if known is not None else f"adopted-{ident}"


class _AdoptionMarker:
    """Lives in an adopted thread's thread-local state; its end means the thread's."""


class Adoptions:
    """OS threads the LibOS did not create but that used it, as Gramine meets a thread it
    did not create: each is given a tid and an event (``make``), both released when the
    thread ends (its thread-local state goes, and with it the marker whose finaliser
    releases them) or at shutdown."""

    def __init__(
        self, make: Callable[[str], LibOSThread], table: ThreadTable, closed: Callable[[], bool]
    ) -> None:
        self._make = make
        self._table = table
        self._closed = closed  # the LibOS is shut down: no more adoptions
        self._lock = threading.Lock()
        self._threads: dict[int, LibOSThread] = {}  # Guarded by _lock.

    def adopt(self, local: threading.local) -> LibOSThread:
        """Adopt the calling thread; ``local``: the LibOS's thread-local state."""
        if self._closed():
            raise ShutDownError("the LibOS is shut down")
        # Made outside the lock: the event's handshake can take the host's whole deadline,
        # and shutdown (``forget_all``) must not wait for it.
        thread = self._make(_calling_thread_name())
        with self._lock:  # shutdown forgets them under it, after it marked itself closed
            closed = self._closed()
            if not closed:
                self._threads[thread.tid] = thread
        if closed:
            # Shut down while the event was made: undo what shutdown could not see.
            self._table.remove(thread)
            thread.event.destroy()
            raise ShutDownError("the LibOS is shut down")
        marker = _AdoptionMarker()
        weakref.finalize(marker, self._forget, thread.tid)
        local.thread = thread
        local.marker = marker
        return thread

    def _forget(self, tid: int) -> None:
        with self._lock:
            thread = self._threads.pop(tid, None)
        if thread is not None:
            # Its event goes first: once the thread is out of the table, nothing of it
            # is left (a shutdown right after finds its channel closed, not closing).
            thread.event.destroy()
            self._table.remove(thread)

    def forget_all(self) -> None:
        """At shutdown, which releases what is still in the table itself."""
        with self._lock:
            self._threads = {}


class ThreadTable(dict[int, LibOSThread]):
    """tid -> thread for every live LibOS thread.

    No lock: each operation is one C-level operation on the dict (a store, a ``pop``, a
    ``get``, ``list`` of the values), which runs whole under the GIL, since no Python code
    runs inside it (the keys are ints; a thread dropped by ``pop`` is finalised after the
    dict is consistent again).  A tid comes from an ``itertools.count``, whose ``next`` is
    one C call as well.  A lock around them would add nothing but its cost, on every
    thread start and exit."""

    def __init__(self, first_tid: int = 1) -> None:
        super().__init__()
        self.new_tid = itertools.count(first_tid).__next__

    def add(self, thread: LibOSThread) -> None:
        self[thread.tid] = thread

    def remove(self, thread: LibOSThread) -> None:
        self.pop(thread.tid, None)

    def all(self) -> list[LibOSThread]:
        return list(self.values())
