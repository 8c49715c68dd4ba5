"""The guarded clones of ``clone_floor.py``: the floor's work with the guarantees a LibOS
thread start gives and none of its layers (``GuardedClone``), and the same with
sgx/eventfd's event, a new host eventfd per start (``GuardedEventfdClone``).  They price
the LibOS's layering against its guarantees: ``clone_floor.py`` installs them, times them
beside native, the floor and the LibOS, and counts their bytecodes."""

from __future__ import annotations

import _thread
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from operator import not_
from typing import TYPE_CHECKING, Any

from pylibos.libos._thread import UNRAISABLE_ARGS, report_unraisable
from pylibos.pal import (
    critical_deliver,
    critical_owed,
    marks_critical_sections_from_entry,
)
from pylibos.pal._identity import EventfdRegistry

if TYPE_CHECKING:

    def _count(mapping: MutableMapping[Any, int], items: Iterable[Any], /) -> None:
        """Add one to ``mapping[item]`` for each item, in one step (as the PAL's ledger)."""

else:
    from _collections import _count_elements as _count

_ORIGINAL_START = _thread.start_new_thread
_ORIGINAL_JOINABLE: Callable[..., Any] | None = getattr(_thread, "start_joinable_thread", None)
# Called through these module attributes (so the opcode counter can wrap them).
_start_new_thread = _ORIGINAL_START
_start_joinable_thread = _ORIGINAL_JOINABLE

_allocate_lock = _thread.allocate_lock
_get_ident = _thread.get_ident
_new = object.__new__
_CLONE_KIND = ("clone_thread",)  # what ``_count`` adds to the calls by kind
_EVENTFD_KIND = ("eventfd",)
_CLOSE_KIND = ("close",)
_EVENTFD_FLAGS = os.EFD_CLOEXEC | os.EFD_NONBLOCK  # as the PAL makes an event's eventfd
_ONE_CALL = (0,)  # and to a thread's account
# Where ``sys.UnraisableHookArgs`` could not be had, a failure escaping a thread started
# through ``_thread`` is raised on for the interpreter to report (as the LibOS does).
_REPORTS_ITSELF = UNRAISABLE_ARGS is None
# A creator's ``taken`` on the interpreter's own start (never appended to).
_AS_NATIVE: list[GuardedThread] = []


class _Clone:
    """What both clones own: a pool of real raw pipes, thread slots, a thread table."""

    def __init__(self, pool: int, max_threads: int) -> None:
        self._pipes = [os.pipe() for _ in range(pool)]
        self._pool = list(self._pipes)
        # The main thread holds one slot, as in the LibOS's sgx host.
        self.max_threads = max_threads
        self._slots: list[None] = [None] * (max_threads - 1)
        self.installed = False  # set by ``installed``

    def close(self) -> None:
        for r, w in self._pipes:
            os.close(r)
            os.close(w)
        self._pipes = []

    def start_new_thread(
        self, function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None, /
    ) -> int:
        raise NotImplementedError

    def start_joinable_thread(
        self, function: Callable[..., object], /, handle: object = None, daemon: bool = True
    ) -> object:
        raise NotImplementedError


class GuardedThread:
    """A thread the guarded clone started: the LibOS's thread and the PAL's host-thread
    record in one object, built in place (no ``__init__``: only what differs from the
    class defaults is stored).  It runs exactly when ``ident`` or ``handle`` is set;
    ``done`` is held from before its start until its exit work is done."""

    tid: int
    event: Any = None  # a pooled pipe's two ends, or an eventfd
    started_by: object = None  # what a failure is reported against
    ident: int | None = None
    handle: object = None  # 3.13+: what ``_thread.start_joinable_thread`` returned
    exception: BaseException | None = None  # kept: what the function raised
    finished = False
    done: Any  # a lock

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread's exit work to be done."""
        if self.done.acquire(timeout=timeout):
            self.done.release()
            return True
        return False


class _Accounts(dict[int, dict[int, int]]):
    """Host-call accounts by thread ident, a thread's own made on its first lookup."""

    def __missing__(self, ident: int) -> dict[int, int]:
        account = self[ident] = {0: 0}
        return account


class GuardedClone(_Clone):
    """The floor's work with the guarantees a LibOS thread start gives, without its layers.

    Kept, as the LibOS keeps them:

    - a Ctrl-C-safe start: the creator is a marked critical section the PAL's way
      (``marks_critical_sections_from_entry``, ``_pal_critical``, ``critical_owed`` and
      ``critical_deliver``): a KeyboardInterrupt between any two of its bytecodes leaves
      either a running thread, or nothing taken and the ``threading.Thread`` out of
      ``threading._limbo``; a start that fails gives back what it took (event, table
      entry, slot, live-set entry) inside the section it failed in;
    - the primitive's argument checks and messages, and keyword arguments;
    - the installed test (uninstalled, the interpreter's own start) and the closed test,
      before the start and again once the thread is recorded;
    - the profile's sampling turn (``next()`` on an iterator like the LibOS profile's),
      given back by a start that fails;
    - host calls counted by kind and per thread (``_collections._count_elements`` into a
      dict of accounts made on a thread's first lookup), the account dropped at exit;
    - a thread object holding a ``done`` lock until its exit work is done, recorded in
      the table, the live-thread set and the ``running`` dict (by ident) before its
      function runs; the record made before the start, so a failed start knows whether
      the thread runs;
    - slot take and give-back with the test for a waiter to wake;
    - the exception the thread's function raised kept on the thread object and, for a
      thread started through ``_thread``, reported as the interpreter reports it;
    - the exit work in nested ``finally`` blocks: an exception in one part does not
      skip the others.

    Not kept, so this is no LibOS: no PAL layering (no host object, no ledger gate
    mapping ``OSError``), no timing of the clones the profile samples, no wait for a
    slot (with no slot free the start fails with ``RuntimeError``), no shutdown that
    joins the threads or sweeps the table, no fork-child handling.  Its purpose is to
    price the LibOS's layering against the guarantees themselves.
    """

    def __init__(self, pool: int = 64, max_threads: int = 64, profile_every: int = 8) -> None:
        super().__init__(pool, max_threads)
        self._tids = itertools.count(1)
        self._table: dict[int, GuardedThread] = {}
        # Where a start's event comes from and goes back to: the pool (bound C methods);
        # a fresh host eventfd in ``GuardedEventfdClone``.
        self._take_event: Callable[[], Any] = self._pool.pop
        self._give_event: Callable[[Any], None] = self._pool.append
        self._take_slot = self._slots.pop
        self._give_slot = self._slots.append
        # A start with no slot free would wait for the doorbell, listed in ``_waiting``
        # (not in this variant: nothing waits, but every exit makes the waiter test).
        self._waiting: list[None] = []
        self._doorbell = threading.Lock()
        self._doorbell.acquire()
        self._threads: set[GuardedThread] = set()
        self._running: dict[int, GuardedThread] = {}
        self.calls: dict[str, int] = {}
        self._accounts = _Accounts()
        # One item per start, as the LibOS profile's: whether to sample it.
        self._made = itertools.count()
        self._failed = itertools.count()
        self.sampling: Iterator[bool] = map(not_, map(profile_every.__rmod__, self._made))
        self._created = itertools.count()
        self.closed = False

    def close(self) -> None:
        """Refuse further starts and close the pool (threads still running are not
        joined: give them time to end first)."""
        self.closed = True
        super().close()

    @property
    def host_calls(self) -> int:
        return self.calls.get("clone_thread", 0)

    @property
    def threads_created(self) -> int:
        """Threads started while installed (the count's repr, read without advancing)."""
        return int(repr(self._created)[6:-1])

    @property
    def starts_failed(self) -> int:
        return int(repr(self._failed)[6:-1])

    # The creator: a marked section from its first bytecode to the first line of its
    # ``try`` (``_pal_critical = False`` ends it and raises an interrupt owed), open to a
    # Ctrl-C through the checks (nothing is taken yet), a section again from
    # ``_pal_critical = True`` to the start's end (the thread started and counted), where
    # an interrupt owed is raised with the thread running.  A failure inside the section
    # is undone in it (``_not_started``, called with the marker still set), and an
    # interrupt owed is raised after.  ``taken`` holds the thread once made; ``_AS_NATIVE``: the
    # interpreter's own start (uninstalled), whose errors go out as they come.

    @marks_critical_sections_from_entry
    def start_new_thread(
        self, function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None, /
    ) -> int:
        taken: list[GuardedThread] = []
        try:
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
            if not self.installed:
                taken = _AS_NATIVE
                if kwargs is None:
                    return _ORIGINAL_START(function, args)
                return _ORIGINAL_START(function, args, kwargs)
            if not callable(function):
                raise TypeError("first arg must be callable")
            if not isinstance(args, tuple):
                raise TypeError("2nd arg must be a tuple")
            fn = function
            if kwargs is not None:
                if not isinstance(kwargs, dict):
                    raise TypeError("optional 3rd arg must be a dictionary")
                if kwargs:
                    fn = functools.partial(function, **kwargs)
            if self.closed:
                raise RuntimeError("can't start new thread: the clone is closed")
            _pal_critical = True
            next(self.sampling)  # a sampled start would be timed: not in this variant
            thread = _new(GuardedThread)
            taken.append(thread)
            thread.tid = tid = next(self._tids)
            thread.started_by = function
            thread.event = self._take_event()
            self._table[tid] = thread
            done = thread.done = _allocate_lock()
            done.acquire()
            self._take_slot()
            self._threads.add(thread)  # (in the set: a slot taken)
            if self.closed:  # closed since the test above
                raise RuntimeError("can't start new thread: the clone is closed")
            _count(self.calls, _CLONE_KIND)
            _count(self._accounts[_get_ident()], _ONE_CALL)
            thread.ident = _start_new_thread(self._run, (thread, fn, args))
            next(self._created)
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
        except BaseException as exc:
            error = self._not_started(exc, taken, function)
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
            if error is not None:
                raise error from None
            raise
        return thread.ident

    @marks_critical_sections_from_entry
    def start_joinable_thread(
        self, function: Callable[..., object], /, handle: object = None, daemon: bool = True
    ) -> object:
        taken: list[GuardedThread] = []
        try:
            installed = self.installed  # (still in the section: a Ctrl-C waits a line)
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
            if not installed:
                taken = _AS_NATIVE
                assert _ORIGINAL_JOINABLE is not None
                return _ORIGINAL_JOINABLE(function, handle=handle, daemon=daemon)
            if not callable(function):
                raise TypeError("thread function must be callable")
            if self.closed:
                raise RuntimeError("can't start new thread: the clone is closed")
            _pal_critical = True
            next(self.sampling)
            thread = _new(GuardedThread)
            taken.append(thread)
            thread.tid = tid = next(self._tids)
            thread.event = self._take_event()
            self._table[tid] = thread
            done = thread.done = _allocate_lock()
            done.acquire()
            self._take_slot()
            self._threads.add(thread)
            if self.closed:
                raise RuntimeError("can't start new thread: the clone is closed")
            _count(self.calls, _CLONE_KIND)
            _count(self._accounts[_get_ident()], _ONE_CALL)
            # (No ``started_by``: ``threading``'s bootstrap reports a failure itself, and
            # one escaping it the interpreter reports, as natively.)
            thread.handle = _start_joinable_thread(  # type: ignore[misc]  # (3.13+: set)
                functools.partial(self._run, thread, function, ()), handle=handle, daemon=daemon
            )
            next(self._created)
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
        except BaseException as exc:
            error = self._not_started(exc, taken, function)
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
            if error is not None:
                raise error from None
            raise
        return thread.handle

    def _not_started(
        self, exc: BaseException, taken: list[GuardedThread], function: object
    ) -> RuntimeError | None:
        """After ``exc`` came out of a start.  A thread that runs (an interrupt raised once
        it started) has nothing to undo.  Otherwise what was taken is given
        back: if anything was, ``exc`` came from inside the creator's section, which is
        still open (a Ctrl-C waits for the rollback's end).  A ``threading.Thread`` that
        a KeyboardInterrupt (owed or not) leaves unstarted is taken out of ``_limbo``,
        as ``Thread.start`` does only for an ``Exception``.  Returns the primitive's
        ``RuntimeError`` for a start refused for want of an event or a slot."""
        if taken is _AS_NATIVE:
            return None  # the interpreter's own start: as native
        if taken and (taken[0].ident is not None or taken[0].handle is not None):
            return None  # counted in the section that started it
        error = None
        if taken:
            thread = taken[0]
            if isinstance(exc, IndexError):
                what = "event" if thread.event is None else "thread slot"
                error = RuntimeError(f"can't start new thread: no {what} free")
            elif isinstance(exc, OSError):  # no eventfd to be had
                error = RuntimeError(f"can't start new thread: {exc}")
            next(self._failed)  # its turn in the sampling: no start
            if thread in self._threads:
                self._threads.discard(thread)
                self._give_slot(None)
            if self._table.get(thread.tid) is thread:
                del self._table[thread.tid]
            if thread.event is not None:
                self._give_event(thread.event)
                thread.event = None
            thread.finished = True
            done = getattr(thread, "done", None)
            if done is not None and done.locked():
                done.release()
        if not isinstance(exc, Exception) or critical_owed[0]:
            _forget_unstarted(function)
        return error

    def _run(self, thread: GuardedThread, fn: Callable[..., object], args: Any) -> None:
        """The thread: in ``running`` while its function runs; then its exit work."""
        ident = thread.ident = _get_ident()
        running = self._running
        running[ident] = thread
        try:
            fn(*args)
        except BaseException as exc:
            thread.exception = exc
            if _REPORTS_ITSELF or thread.started_by is None:
                raise  # the interpreter reports it, once the exit work is done
            tb = exc.__traceback__
            if tb is not None:  # from the function's own frame, as natively
                exc.__traceback__ = tb.tb_next
            if not isinstance(exc, SystemExit):  # which ends such a thread quietly
                report_unraisable(exc, thread.started_by)
        finally:
            try:
                try:
                    del self._table[thread.tid]
                    self._give_event(thread.event)
                finally:
                    del running[ident]
            finally:
                try:
                    self._threads.discard(thread)
                    if ident in self._accounts:
                        del self._accounts[ident]
                    self._give_slot(None)
                    if self._waiting and self._doorbell.locked():
                        self._doorbell.release()
                finally:
                    thread.finished = True
                    try:  # noqa: SIM105 (on every exit: suppress() costs a context manager)
                        thread.done.release()
                    except RuntimeError:
                        pass


class GuardedEventfdClone(GuardedClone):
    """The guarded clone with sgx/eventfd's event: a new host eventfd per start, closed at
    the thread's exit, with the PAL's work for it and none of its layers.  The eventfd is
    made known to an identity registry (``pylibos.pal``'s ``EventfdRegistry``: one epoll
    per clone, the eventfd registered in it at its making), and at the exit it is checked
    to be still the one made (kcmp), unregistered and closed, so that a descriptor number
    the host handed to another object is never closed.  Its making and its close are one
    host call each, counted as the PAL counts them (by kind and in the thread's
    account).  Where kcmp is not to be had (no registry), the eventfd is closed
    unchecked, as no LibOS would: the figures then leave the check out.  An eventfd the
    host refuses fails the start with ``RuntimeError`` and leaves nothing taken."""

    def __init__(self, max_threads: int = 64, profile_every: int = 8) -> None:
        super().__init__(pool=0, max_threads=max_threads, profile_every=profile_every)
        self._registry = EventfdRegistry.make(_bookkeeping)
        self._take_event = self._open_eventfd
        self._give_event = self._close_eventfd

    def close(self) -> None:
        super().close()
        if self._registry is not None:
            self._registry.close()

    def _open_eventfd(self) -> int:
        _count(self.calls, _EVENTFD_KIND)
        _count(self._accounts[_get_ident()], _ONE_CALL)
        fd = os.eventfd(0, _EVENTFD_FLAGS)
        registry = self._registry
        if registry is not None:
            try:
                registry.add(fd)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _close_eventfd(self, fd: int) -> None:
        _count(self.calls, _CLOSE_KIND)
        _count(self._accounts[_get_ident()], _ONE_CALL)
        registry = self._registry
        if registry is not None:
            # The PAL's check at a close: the entry first registered under the number
            # (kcmp's argument for it made once per number), then any other.
            first = registry._first.get(fd) or registry._first_entry(fd)
            if registry._kcmp_epoll_tfd(fd, first) != 0 and not registry.same(fd):
                return  # not the eventfd made: its number is never touched
            registry.remove(fd)
        os.close(fd)


def _bookkeeping(syscall: str, where: str, fn: Callable[..., Any], *args: Any) -> Any:
    """The identity registry's system calls, made as they come (the PAL's ``_aside``
    gate without its audit count and its error mapping)."""
    return fn(*args)


def _forget_unstarted(function: object) -> None:
    """Take a ``threading.Thread`` whose start was interrupted before any thread existed
    for it out of ``threading._limbo``, as ``Thread.start`` does for a failed start."""
    owner = getattr(function, "__self__", None)
    if isinstance(owner, threading.Thread):
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            threading._limbo.pop(owner, None)  # type: ignore[attr-defined]
