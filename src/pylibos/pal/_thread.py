"""Threads the PAL creates (``PalThreadCreate``): the host's clone.

A PAL thread is started with the interpreter's own low-level primitive,
``_thread.start_new_thread``, the way Gramine's PAL issues the host's ``clone``: no
``threading.Thread`` object is made for it.  ``threading`` sits *above* the LibOS (its
thread start can be the LibOS's, see ``pylibos.libos.install``), so the PAL must reach
the primitive the interpreter had before anything replaced it: it is bound here, when
the PAL is first imported.
"""

from __future__ import annotations

import _thread
import functools
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import Any

# Bound at import, before a thread-start hook can replace the module attributes.
_start_new_thread = _thread.start_new_thread
# 3.13 and later: threading starts its threads with this one, on a handle it made.
_start_joinable_thread: Callable[..., Any] | None = getattr(_thread, "start_joinable_thread", None)
_allocate_lock = _thread.allocate_lock
_get_ident = _thread.get_ident
_SLICE_S = 0.5


class PalThread:
    """A host thread running ``fn(*args)``.

    An exception escaping ``fn`` is kept in ``exception`` for whoever joins the thread;
    with ``reraise`` it is also raised again once the PAL's exit work is done, so the
    interpreter reports it as it reports any exception escaping a thread it started.
    ``joinable`` is ``(handle, daemon)`` for ``_thread.start_joinable_thread`` (3.13+),
    whose handle ``threading`` joins; ``handle`` is then what that call returned.
    The thread holds ``_done`` from before it starts until its exit work (``on_exit``)
    has run, so ``join`` is one lock acquisition; ``_finished`` is set just before that
    release, so whether the thread has ended never depends on who holds the lock after.

    A host makes its threads in one place, ``Threads.thread_start_now``, which builds
    them in place (no ``__init__``: one frame less on every start).  The creator's exit
    work, ``at_exit(thread, tag)``, runs on the thread once ``fn`` has returned or
    raised (what it raised is in ``exception``), before the host's ``_on_exit``; while
    the thread runs, ``running`` (if given) lists ``tag`` under its ident, from before
    ``fn`` until ``at_exit`` is done.
    """

    # Defaults for what most threads never change: only what differs is stored.
    exception: BaseException | None = None
    ident: int | None = None
    handle: object = None
    helper = False
    _joinable: tuple[object, bool] | None = None
    _reraise = False
    _finished = False
    _started = False
    name: str
    _on_exit: Callable[[PalThread], None]
    _done: Any  # a lock: held from before the start until the exit work is done
    # What ``start`` hands the new thread, ``_run``'s arguments: a joinable thread's,
    # let go of by ``start`` (the thread holds no cycle through them: ``tag`` may hold
    # the thread).
    _launch: tuple[Any, ...] | None = None

    def start(self) -> None:
        """Start a joinable host thread (``_joinable``: Python 3.13+, on the handle
        ``threading`` made); raises ``RuntimeError`` when the OS refuses one.  (A thread
        that is not joinable is started by its host in place: ``thread_start_now``.)"""
        assert _start_joinable_thread is not None, "joinable threads need Python 3.13"
        assert self._joinable is not None and self._launch is not None
        self._started = True
        try:
            handle, daemon = self._joinable
            self.handle = _start_joinable_thread(
                functools.partial(self._run, *self._launch), handle=handle, daemon=daemon
            )
            self.ident = self.handle.ident  # type: ignore[attr-defined]
            # Let go here, on the creator (the thread has its arguments): no cycle stays
            # through them (``tag`` may hold the thread).
            self._launch = None
        except Exception:
            # The primitive refused (RuntimeError, MemoryError): no thread exists.  A
            # KeyboardInterrupt can only arrive after the call returned, with the thread
            # running: it releases _done itself.
            self._refused()
            raise

    def _refused(self) -> None:
        """The primitive refused the thread: it never runs, and counts as ended."""
        self._launch = None
        self._finished = True
        self._done.release()

    def _run(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        at_exit: Callable[[PalThread, Any], object] | None,
        running: dict[int, Any] | None,
        tag: object,
    ) -> None:
        ident = self.ident = _get_ident()
        if running is not None:
            running[ident] = tag
        try:
            fn(*args)
        except BaseException as exc:
            self.exception = exc
            if self._reraise:
                # Raised on, through the exit work below, to the interpreter, its
                # traceback the function's under this one frame.  Raised here, not
                # after the exit work: the common path (no exception) tests nothing
                # once that work is done.
                raise
        finally:
            # The exit work: the creator's, then out of ``running`` (the last of the
            # creator's), then the host's; the thread has ended once ``_done`` is free.
            try:
                try:
                    if at_exit is not None:
                        at_exit(self, tag)
                finally:
                    if running is not None:
                        del running[ident]
            finally:
                try:
                    self._on_exit(self)
                finally:
                    self._finished = True
                    try:  # noqa: SIM105 (on every thread's exit; as _give_back_done)
                        self._done.release()
                    except RuntimeError:
                        pass

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` seconds, if given) for the thread to end; True when it
        has (or its start failed).  A thread made but not yet started is waited for: the
        host records it just before it starts it."""
        deadline = None if timeout is None else _monotonic() + max(timeout, 0.0)
        try:
            # In slices: a joiner interrupted twice between taking the lock and giving
            # it back strands the others for one slice at most.
            while not self._finished:
                if self._left_its_host():
                    self._finished = True
                    break
                left = _SLICE_S if deadline is None else min(_SLICE_S, deadline - _monotonic())
                if left < 0:
                    return False
                if self._done.acquire(timeout=left):
                    self._give_back_done()
                    break
        except BaseException:
            # A Ctrl-C between the acquisition and its release: the thread had finished
            # (only then is the lock free to take) and nobody else will release it.
            if self._finished and self._done.locked():
                self._give_back_done()
            raise
        return True

    def _left_its_host(self) -> bool:
        """Whether the thread has done its host's exit bookkeeping (it is out of the
        host's list of threads, which it is in from before its start) but is not marked
        ended yet: a moment from its end, or, in a fork child, a thread of the parent's
        the fork caught between the two, which will never end there (the child's fork
        hook finds the parent's threads in that list).  Looked at by ``join``, never on
        a thread's start or exit."""
        host = getattr(self._on_exit, "__self__", None)  # None: the forking thread's
        return self._started and host is not None and self not in host._threads

    def _give_back_done(self) -> None:
        # An interrupted joiner's ``except`` branch may have let the lock go already (it
        # can see ``_finished`` just before the thread's own release): the second
        # release then finds the lock free, which is what both wanted.
        # On every thread's exit: a bare try costs nothing, ``contextlib.suppress`` ~0.4 µs.
        try:  # noqa: SIM105
            self._done.release()
        except RuntimeError:
            pass

    def is_alive(self) -> bool:
        """True from ``start`` until the thread's exit work is done."""
        return self._started and not self._finished

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else "done" if self.ident else "initial"
        return f"<PalThread {self.name} {state} ident={self.ident}>"
