"""The LibOS: boots on a PAL host and creates threads the way Gramine's LibOS does.

``clone`` walks the path the seed measures::

    clone
      get_new_thread            a tid, a LibOSThread, in the thread table
        create_pollable_event   the thread's wake-up event (a pipe, raw pipe or eventfd)
          handshake             on sgx with pipe events: session key, secure init,
                                the handshake helper, the accepting end's handshake
      PalThreadCreate           the host thread

A failure anywhere inside ``clone`` undoes what was made and raises ``OSError`` with the
errno Gramine would return.  The async and IPC workers and their API are in
``_services``, the base class's module; the teardown (``shutdown``) and the fork child's
handling in ``_teardown``, its base's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..pal import (
    Host,
    PalError,
    PalThread,
    ShutDownError,
    critical_deliver,
    critical_owed,
    marks_critical_sections,
)
from ._async import AsyncWorker
from ._epoll import Epoll
from ._epoll_table import EpollTable
from ._errno import oserror
from ._event import EVENT_KINDS, EventFactory, PollableEvent
from ._ipc import IpcWorker
from ._profile import Profile, check_every
from ._services import Services
from ._teardown import _LIVE
from ._thread import Adoptions, LibOSThread, ThreadTable

_IPC_NAME_TRIES = 8
_CLONED = "libos-clone"  # the PAL thread's name for a cloned thread (its repr)
_clock = time.perf_counter_ns
_get_ident = threading.get_ident
_get_native_id = threading.get_native_id
_getpid = os.getpid
_new_thread = object.__new__


def default_events(host: Host) -> str:
    """The fixed system by default: raw pipes on sgx, plain pipes elsewhere."""
    return "raw" if host.kind == "sgx" else "pipe"


class LibOS(Services):
    """A booted LibOS on ``host``.  Use it as a context manager, or call ``shutdown``.

    ``profile`` times the clone path's phases (``self.profile``), in one clone of every
    ``profile_every`` (an int of at least 1): every clone by default; ``SAMPLE_EVERY`` (8,
    as ``pylibos run`` does) keeps the profile's cost to an eighth."""

    def __init__(
        self,
        host: Host,
        events: str | None = None,
        pool: bool = False,
        *,
        profile: bool = True,
        profile_every: int = 1,
        ipc_name: str | None = None,
    ) -> None:
        if not isinstance(host, Host):
            raise TypeError(f"LibOS needs a PAL host (pylibos.pal.open_host), got {host!r}")
        if events is None:
            events = default_events(host)
        if events not in EVENT_KINDS:
            raise ValueError(f"unknown events {events!r}; choose one of {', '.join(EVENT_KINDS)}")
        check_every(profile_every)
        if host.closed:
            raise ShutDownError("the host is shut down")
        self.host = host
        self.events = events
        self.pool = bool(pool)
        self.profile = Profile(host, enabled=profile, every=profile_every)
        self._closed = False
        # The thread-start hook installed for this LibOS, if any (``pylibos.libos.install``).
        self._hook = None
        # The host-call counts of the LibOS's own workers (``worker_host_calls``).
        self._worker_accounts = []
        self._down = False  # shutdown has run to its end
        # The main thread's and adopted threads' LibOS thread.  A cloned thread is in
        # _running instead: a thread-local's first use in a new thread makes its
        # per-thread dictionary and a weak reference (about 2,000 CPU instructions),
        # where one dict store and pop, each atomic under the GIL, cost a third of that.
        self._local = threading.local()
        self._running: dict[int, LibOSThread] = {}  # ident -> thread, while fn runs
        self._at_exit = self._thread_exit  # bound once, not once per clone
        # The process whose threads _running lists: the fork hook sets it to the child's.
        # A fork made below Python runs no hook: there it is the parent's, and
        # current_thread takes no hit in _running but the forking thread's.
        self._running_pid = _getpid()
        # The process that started the workers (the async and IPC ones): a fork child
        # neither stops nor joins them in its shutdown (they are the parent's).
        self._boot_pid = self._running_pid
        _LIVE.add(self)  # in a fork child, _running keeps the forking thread only
        self._table = ThreadTable()
        self._factory = EventFactory(host, events, pool=self.pool)
        self._epolls = EpollTable()
        self._adopted = Adoptions(self._get_new_thread, self._table, lambda: self._closed)
        self._async: AsyncWorker | None = None
        self._ipc: IpcWorker | None = None
        self._host_phase = host.phase
        host.phase = self.profile.phase
        try:
            self.main_thread = self._get_new_thread("main")
            self._local.thread = self.main_thread
            self._boot_workers(ipc_name)
        except BaseException:
            self.shutdown()
            raise

    # -- threads ---------------------------------------------------------------------

    def clone(self, fn: Callable[..., object], *args: Any, name: str | None = None) -> LibOSThread:
        """Create a thread running ``fn(*args)``; returns once the host thread exists.

        Raises ``OSError`` and leaves nothing behind when a resource runs out: ``EMFILE``
        when the host has no descriptor for the thread's event, ``ENOMEM`` when it has no
        thread slot (``sgx.max_threads``), as Gramine's PAL reports an exhausted TCS.
        """
        return self._clone(fn, args, name, None, None, False, None, None)

    @marks_critical_sections
    def _clone(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        name: str | None,
        started_by: object,
        joinable: tuple[object, bool] | None,
        reraise: bool,
        unraisable: object,
        started: list[LibOSThread] | None,
    ) -> LibOSThread:
        """The clone path; positional only, it runs on every thread start.

        When the program's thread library starts the thread: ``started_by`` is what it
        started it with (the thread's name comes from it), ``joinable`` and ``reraise``
        are the PAL's ``thread_start`` options, and ``unraisable`` what a failure of the
        thread is reported against (as ``_thread.start_new_thread`` reports one).  The
        thread is appended to ``started`` as soon as it is made; it runs exactly when its
        ``_pal`` is set, so a caller that a KeyboardInterrupt reaches anywhere knows
        whether it runs."""
        if self._closed:
            raise ShutDownError("the LibOS is shut down")
        # Ctrl-C safety: every step from here records what it made where the rollback
        # below (or shutdown) finds it.  The event, the table entry and the host thread
        # are made and recorded in one critical section (a marked one, the PAL's cheaper
        # kind: ``_pal_critical`` set to its ``finally``; a Ctrl-C there is deferred to
        # its end: microseconds, or on sgx pipes until the handshake ends, within
        # handshake_timeout).  The PAL starts the host thread in it only if a thread slot
        # is free (``thread_start_now``).  Either way the PAL records the host thread
        # on the thread (``_attach``) just before it starts it, in the section that
        # starts it, so ``_pal`` is set exactly when the thread runs, for the thread
        # itself and for any other looking at it.  With no slot free, the section ends
        # first: the wait for one (a ``SlotWait``) must stay open to a Ctrl-C, and the
        # start is tried again in a section of its own.  The thread is in the table
        # with its event before the host thread starts.
        # The profile samples one clone in ``profile.every``: ``next(sampling)`` is the
        # whole of its cost for a clone not sampled.  A sampled clone's boundaries are
        # local variables (see ``Profile.open_clone``):
        # clone and get_new_thread start at t0, create_pollable_event spans t1..t2,
        # get_new_thread ends at t3, the clone once the host thread exists.  The host
        # calls are read at t0, t2 and the end: t0..t1 and t2..t3 make none (the thread
        # object, the table, the section's bounds), so the counts there are the same.
        # A marked critical section from here to the ``finally`` in the loop below
        # (a retry after a wait for a slot opens it again): a Ctrl-C comes only once
        # the thread runs or the rollback has undone everything, so the profile's count
        # of clones started (its turn in the sampling taken here, given back by
        # ``drop_clone``) is never off by one.
        _pal_critical = True
        profile = self.profile
        opened = profile.open_clone() if next(profile.sampling) else None
        if opened is not None:
            account = opened.account
            t0 = _clock()
            c0 = account[0]
        # ``LibOSThread(tid, name, started_by)``, built in place: calling a class with a
        # Python ``__init__`` costs a frame the interpreter cannot inline.
        thread = _new_thread(LibOSThread)
        thread.tid = self._table.new_tid()
        thread._name = name
        thread._started_by = started_by
        if started is not None:
            started.append(thread)
        if reraise:
            thread._error_seen = True  # the interpreter reports a failure itself
        if unraisable is not None:
            thread._unraisable = unraisable
        t1: int  # (annotations only: no code on the clone path)
        t2: int
        c2: int
        t3: int
        wait = None
        try:
            while True:
                try:
                    if thread.event is None:  # the first time round
                        if opened is not None:
                            t1 = _clock()
                        thread.event = self._factory.create()
                        if opened is not None:
                            t2 = _clock()
                            c2 = account[0]
                        self._table[thread.tid] = thread
                        if opened is not None:
                            t3 = _clock()
                    if self._closed:
                        # Shut down while the event was made (shutdown's sweep may have
                        # run before the add) or while this clone waited for a slot: the
                        # except branch below undoes it.
                        raise ShutDownError("the LibOS is shut down")
                    # The program's function runs on the host thread itself; the LibOS's
                    # exit work is the PAL's ``at_exit`` (``_thread_exit``), and the
                    # thread is in ``_running`` under its ident while it runs (the PAL
                    # lists it there).
                    started_now = self.host.thread_start_now(
                        fn,
                        args,
                        _CLONED,
                        joinable,
                        reraise,
                        thread._attach,
                        self._at_exit,
                        self._running,
                        thread,
                    )
                finally:
                    _pal_critical = False
                    if critical_owed[0]:
                        critical_deliver()
                if started_now:
                    break
                # No thread slot free: wait for one, open to a Ctrl-C, then try again in
                # the section (which looks at ``_closed`` again first).
                if wait is None:
                    wait = self.host.slot_wait()
                wait.wait()
                _pal_critical = True  # the section again, for the next try
        except BaseException as exc:
            # The rollback is one marked section: a Ctrl-C finds the thread either still
            # in the table with its event (shutdown destroys it) or out of it with its
            # event destroyed, never in between.
            _pal_critical = True
            try:
                if wait is not None:
                    wait.abandon()
                if thread._pal is None or isinstance(exc, PalError):
                    # Not running (a running thread, interrupted after its start, stays
                    # in the table and shutdown joins it: its failure is never lost,
                    # and it counts as started).
                    profile.drop_clone()
                    thread._pal = None
                    self._table.remove(thread)
                    if thread.event is not None:
                        thread.event.destroy()
                else:
                    profile.abandon_clone()
            finally:
                _pal_critical = False
                if critical_owed[0]:
                    critical_deliver()
            if isinstance(exc, PalError):
                raise oserror(exc, "clone") from exc
            raise
        if opened is not None:
            end = _clock()
            profile.close_clone(opened, [None, t0, c0, t1, c0, t2, c2, t3, c2, end, account[0]])
        return thread

    _CLONE_CODE = _clone.__code__  # what ``_starts_under_way`` finds on the stacks

    def _get_new_thread(self, name: str | None) -> LibOSThread:
        """A thread the LibOS did not clone (its main thread, an adopted one)."""
        thread = LibOSThread(self._table.new_tid(), name)
        thread.event = self._factory.create()
        self._table.add(thread)
        return thread

    def _thread_exit(self, pal: PalThread, thread: LibOSThread) -> None:
        """A cloned thread's exit work, on that thread, once its function has returned or
        raised (the PAL's ``at_exit``): a failure kept or reported, the thread out of the
        table (one dict step, see ThreadTable), its event back to the pool or closed.  The
        PAL takes it out of ``_running`` after this, so that a shutdown that finds it
        there waits for the release (``_join_cloned``)."""
        if pal.exception is not None:
            self._exited_failing(pal, thread)
        try:  # noqa: SIM105 (on every thread's exit: suppress() costs a context manager)
            del self._table[thread.tid]
        except KeyError:
            pass  # shutdown's sweep took it (the thread had not ended in time)
        self._factory.release(thread.event)

    @staticmethod
    def _exited_failing(pal: PalThread, thread: LibOSThread) -> None:
        failure = pal.exception
        if failure is not None and not thread._error_seen:
            # (With ``reraise`` the interpreter reports it: the PAL keeps it and raises it.)
            pal.exception = None
            thread._failed(failure)

    def current_thread(self) -> LibOSThread:
        """The calling thread's LibOS thread; one the LibOS did not create is adopted on
        first use (see ``Adoptions``)."""
        thread = self._running.get(_get_ident())
        if thread is not None:
            pid = _getpid()
            # In a child of a fork made below Python (no fork hook ran), the only
            # thread left of the parent's is the forking one, the child's first thread
            # (its native id is the pid); another hit is a thread of the child that
            # the C library gave a parent thread's ident.  The test is here, off the
            # start path: a hit costs one more C call (getpid).
            if pid == self._running_pid or _get_native_id() == pid:
                return thread
        thread = getattr(self._local, "thread", None)
        if thread is not None:
            return thread  # type: ignore[no-any-return]  # a LibOSThread
        return self._adopted.adopt(self._local)

    def threads(self) -> list[LibOSThread]:
        """Every live thread in the thread table, main thread included."""
        return self._table.all()

    def thread_by_tid(self, tid: int) -> LibOSThread | None:
        return self._table.get(tid)

    # -- events and epoll (the async and IPC workers' API is ``Services``) --------

    def create_pollable_event(self) -> PollableEvent:
        """A new event of this LibOS's kind; destroy it (or use ``with``) when done."""
        return self._factory.create()

    def epoll(self, sizehint: int = -1, flags: int = 0) -> Epoll:
        """An object with ``select.epoll``'s API, implemented in the LibOS."""
        if self._closed:
            raise ShutDownError("the LibOS is shut down")
        return Epoll(self.host, self._current_event, sizehint, flags, table=self._epolls)

    def _current_event(self) -> PollableEvent:
        return self.current_thread().event

    # -- teardown: ``shutdown``, ``closed`` and the fork child's in ``Teardown`` -------

    def __repr__(self) -> str:
        return f"<LibOS {self.host.kind}/{self.events}{'+pool' if self.pool else ''}>"
