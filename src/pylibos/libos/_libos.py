"""The LibOS: boots on a PAL host and creates threads the way Gramine's LibOS does.

``clone`` walks the path the seed measures::

    clone
      get_new_thread            a tid, a LibOSThread, in the thread table
        create_pollable_event   the thread's wake-up event (a pipe, raw pipe or eventfd)
          handshake             on sgx with pipe events: session key, secure init,
                                the handshake helper, the accepting end's handshake
      PalThreadCreate           the host thread

A failure anywhere inside ``clone`` undoes what was made and raises ``OSError`` with the
errno Gramine would return.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from ..pal import (
    Host,
    PalError,
    PalErrorCode,
    ShutDownError,
    ShutsDown,
    critical_deliver,
    critical_owed,
    marks_critical_sections,
    quiet_thread,
)
from ._async import AsyncWorker
from ._epoll import Epoll
from ._errno import oserror
from ._event import EVENT_KINDS, EventFactory, PollableEvent
from ._interest import EpollTable
from ._ipc import THREADS, IpcClient, IpcWorker
from ._profile import Profile
from ._thread import Adoptions, LibOSThread, ThreadTable


class _Installed(Protocol):
    """What the LibOS asks of the ``Hook`` (``_hook``) installed over it, which knows it."""

    def uninstall(self) -> None: ...


_clock = time.perf_counter_ns
_get_ident = threading.get_ident
_get_native_id = threading.get_native_id
_getpid = os.getpid
_JOIN_S = 5.0
_IPC_NAME_TRIES = 8


# Every LibOS not yet collected; a fork child's copy of each forgets the parent's
# threads (``_forget_other_threads``).  One hook for all, registered once: a hook per
# LibOS could never be taken back.
_LIVE: weakref.WeakSet[LibOS] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for libos in list(_LIVE):
        libos._forget_other_threads()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _quietly(step: Callable[[], object]) -> None:
    """Run one teardown step; a host already shut down makes it fail, and that is fine."""
    with contextlib.suppress(OSError, PalError):
        step()


def default_events(host: Host) -> str:
    """The fixed system by default: raw pipes on sgx, plain pipes elsewhere."""
    return "raw" if host.kind == "sgx" else "pipe"


class LibOS(ShutsDown):
    """A booted LibOS on ``host``.  Use it as a context manager, or call ``shutdown``."""

    def __init__(
        self,
        host: Host,
        events: str | None = None,
        pool: bool = False,
        *,
        profile: bool = True,
        ipc_name: str | None = None,
    ) -> None:
        if not isinstance(host, Host):
            raise TypeError(f"LibOS needs a PAL host (pylibos.pal.open_host), got {host!r}")
        if events is None:
            events = default_events(host)
        if events not in EVENT_KINDS:
            raise ValueError(f"unknown events {events!r}; choose one of {', '.join(EVENT_KINDS)}")
        if host.closed:
            raise ShutDownError("the host is shut down")
        self.host = host
        self.events = events
        self.pool = bool(pool)
        self.profile = Profile(host, enabled=profile)
        self._closed = False
        # The thread-start hook installed for this LibOS, if any (``pylibos.libos.install``).
        self._hook: _Installed | None = None
        # The host-call counts of the LibOS's own workers (``worker_host_calls``).
        self._worker_accounts: list[list[int]] = []
        self._down = False  # shutdown has run to its end
        # The main thread's and adopted threads' LibOS thread.  A cloned thread is in
        # _running instead: a thread-local's first use in a new thread makes its
        # per-thread dictionary and a weak reference (about 2,000 CPU instructions),
        # where one dict store and pop, each atomic under the GIL, cost a third of that.
        self._local = threading.local()
        self._running: dict[int, LibOSThread] = {}  # ident -> thread, while fn runs
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
            self._async = AsyncWorker(self._factory.create())
            self._async.thread = self._start_internal(self._async.run)
            self._ipc = self._ipc_worker(ipc_name)
            self._ipc.handlers[THREADS] = self._ipc_threads
            self._ipc.thread = self._start_internal(self._ipc.run)
        except BaseException:
            self.shutdown()
            raise

    def _ipc_worker(self, ipc_name: str | None) -> IpcWorker:
        """The IPC worker, listening on ``ipc_name``, or on a random name (tried again if
        taken, so a host that binds names cannot keep the LibOS from booting)."""
        ipc_event = self._factory.create()
        tries = 1 if ipc_name is not None else _IPC_NAME_TRIES
        for attempt in range(tries):
            name = ipc_name if ipc_name is not None else f"ipc.{secrets.token_hex(8)}"
            try:
                return IpcWorker(self.host, ipc_event, name)
            except PalError as exc:
                if exc.code is PalErrorCode.STREAMEXIST and attempt + 1 < tries:
                    continue
                ipc_event.destroy()
                raise oserror(exc, f"IPC listener {name!r}") from exc
        raise AssertionError("unreachable")

    def _start_internal(self, fn: Callable[[], None]) -> Any:
        """Start a worker and wait (bounded) until it runs, so that a booted LibOS has
        its workers at their first wait and not still on their way to it."""
        running = threading.Event()

        def worker() -> None:
            quiet_thread()  # the program's signals are not the workers' to take
            self._worker_accounts.append(self.host.thread_account())
            running.set()
            fn()

        worker.__name__ = getattr(fn, "__qualname__", "worker")
        try:
            thread = self.host.thread_create(worker)
        except PalError as exc:
            raise oserror(exc, "start LibOS worker") from exc
        running.wait(_JOIN_S)
        return thread

    def worker_host_calls(self) -> int:
        """Host calls the LibOS's async and IPC workers have made (their periodic
        rechecks, the IPC traffic): no thread creation's doing."""
        return sum(account[0] for account in self._worker_accounts)

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
        # below (or shutdown) finds it.  The event is made and recorded in one critical
        # section (a marked one, the PAL's cheaper kind: ``_pal_critical`` set to its
        # ``finally``; a Ctrl-C there is deferred to its end: microseconds, or on sgx
        # pipes until the handshake ends, within handshake_timeout).  The thread is in
        # the table with its event before the host thread starts, and the PAL records
        # the host thread on it (``_attach``) in the critical section that starts it: so
        # ``_pal`` is set exactly when the thread runs.
        # The profile's boundaries are local variables (see ``Profile.open_clone``):
        # clone and get_new_thread start at t0, create_pollable_event spans t1..t2,
        # get_new_thread ends at t3, the clone once the host thread exists.  The host
        # calls are read at t0, t2 and the end: t0..t1 and t2..t3 make none (the thread
        # object, the table, the section's bounds), so the counts there are the same.
        profile = self.profile
        opened = profile.open_clone() if profile.enabled else None
        if opened is not None:
            account = opened.account
            t0 = _clock()
            c0 = account[0]
        thread = LibOSThread(self._table.new_tid(), name, started_by)
        if started is not None:
            started.append(thread)
        if reraise:
            thread._error_seen = True  # the interpreter reports a failure itself
        if unraisable is not None:
            thread._unraisable = unraisable
        try:
            _pal_critical = True  # a marked critical section (pylibos.pal): to the finally
            try:
                if opened is not None:
                    t1 = _clock()
                thread.event = self._factory.create()
                if opened is not None:
                    t2 = _clock()
                    c2 = account[0]
                self._table[thread.tid] = thread
            finally:
                _pal_critical = False
                if critical_owed[0]:
                    critical_deliver()
            if self._closed:
                # Shut down while the event was made: shutdown's sweep may have run
                # before the add; undo it here (the except branch below does).
                raise ShutDownError("the LibOS is shut down")
            if opened is not None:
                t3 = _clock()
            if joinable is None and not reraise:
                self.host.thread_create(self._thread_main, thread, fn, args, record=thread._attach)
            else:
                self.host.thread_start(
                    self._thread_main,
                    (thread, fn, args),
                    name=thread.name,
                    joinable=joinable,
                    reraise=reraise,
                    record=thread._attach,
                )
        except BaseException as exc:
            profile.drop_clone()
            if thread._pal is not None and not isinstance(exc, PalError):
                # Interrupted once the thread was running: it stays in the table, and
                # shutdown joins it (its failure, if any, is reported, never lost).
                raise
            thread._pal = None
            self._table.remove(thread)
            if thread.event is not None:
                thread.event.destroy()
            if isinstance(exc, PalError):
                raise oserror(exc, "clone") from exc
            raise
        if opened is not None:
            end = _clock()
            profile.close_clone(opened, [None, t0, c0, t1, c0, t2, c2, t3, c2, end, account[0]])
        return thread

    def _get_new_thread(self, name: str | None) -> LibOSThread:
        """A thread the LibOS did not clone (its main thread, an adopted one)."""
        thread = LibOSThread(self._table.new_tid(), name)
        thread.event = self._factory.create()
        self._table.add(thread)
        return thread

    def _thread_main(
        self, thread: LibOSThread, fn: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        ident = _get_ident()
        running = self._running
        running[ident] = thread
        try:
            fn(*args)
        except BaseException as exc:
            if thread._error_seen:  # started with reraise: the interpreter reports it
                raise
            thread._failed(exc)
        finally:
            # The thread's exit work: out of the table (one dict pop, see ThreadTable),
            # its event back to the pool or closed.
            del running[ident]
            self._table.pop(thread.tid, None)
            self._factory.release(thread.event)

    def _forget_other_threads(self) -> None:
        """In a fork child: only the forking thread lives on.  The C library hands the
        other threads' stacks, and so their idents, to the child's new threads, which
        must not be taken for the parent's LibOS threads by ``current_thread``.  (The
        interpreter drops the other threads' thread-locals itself.)  The dict is emptied
        in place, one C call: the forking thread, if it is a cloned one, holds it in
        ``_thread_main``, and a Ctrl-C (main thread only, which is never a cloned one)
        finds it either whole or empty.

        The parent's cloned threads leave the thread table too: shutdown would wake
        them through their events (whose channels are the parent's as well) and join
        threads that do not exist here for its whole timeout.  Their events are not
        destroyed: they are the parent's threads', and the child's copies of their
        descriptors go with the child.  The forking thread, if a cloned one, stays.
        (A hook cut short by a KeyboardInterrupt, which the interpreter reports and
        swallows, leaves the rest listed: shutdown then joins them as before, within
        its timeout.)"""
        me = _get_ident()
        kept = self._running.get(me)
        self._running.clear()
        if kept is not None:
            self._running[me] = kept
        self._running_pid = _getpid()
        table = self._table
        for thread in [t for t in table.values() if t._pal is not None and t is not kept]:
            table.pop(thread.tid, None)

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

    def _ipc_threads(self, _payload: bytes) -> bytes:
        tids = sorted(t.tid for t in self._table.all())
        return struct.pack(f"!{len(tids)}I", *tids)

    # -- events, epoll, async, IPC ---------------------------------------------------

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

    def install_async_event(self, delay: float, callback: Callable[[], object]) -> int:
        """Run ``callback`` on the async worker after ``delay`` seconds."""
        assert self._async is not None
        return self._async.install(delay, callback)

    def cancel_async_event(self, timer_id: int) -> bool:
        assert self._async is not None
        return self._async.cancel(timer_id)

    @property
    def async_errors(self) -> list[BaseException]:
        """Exceptions raised by async callbacks, kept for the program to inspect."""
        return list(self._async.errors) if self._async else []

    @property
    def ipc_name(self) -> str:
        assert self._ipc is not None
        return self._ipc.name

    @property
    def ipc_worker(self) -> IpcWorker:
        assert self._ipc is not None
        return self._ipc

    def ipc_connect(self, name: str) -> IpcClient:
        """Connect to the IPC worker named ``name`` of a process of the same instance."""
        return IpcClient(self.host, name)

    # -- teardown --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self, timeout: float = _JOIN_S) -> None:
        """Stop the workers, wait for threads, and release every event, within ``timeout``
        seconds overall.

        Works whatever state the host is in: if it was shut down first, the steps that
        would reach it fail quietly and the rest of the teardown goes on.  A thread still
        running when the time is up keeps running, but its event is closed and it is out
        of the thread table.  A thread start under way on another thread is waited for:
        it is refused, or its thread starts and is joined; one still under way when the
        time is up is left as such a thread is.  A teardown cut short (a
        KeyboardInterrupt) is finished by calling ``shutdown`` again; once it has run to
        its end, further calls do nothing.
        """
        if self._down:
            return
        # First, so that threads the program starts from now on are native ones.
        hook = self._hook
        if hook is not None:
            hook.uninstall()
        deadline = time.monotonic() + max(0.0, timeout)

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._closed = True
        workers = [w for w in (self._async, self._ipc) if w is not None]
        # In a fork child the workers are the parent's: not stopped (through events
        # whose channels are the parent's too) nor joined (they do not run here).
        ours = workers if _getpid() == self._boot_pid else []
        for worker in ours:
            _quietly(worker.stop)
        for worker in ours:
            if worker.thread is not None:
                worker.thread.join(left())
        if self._ipc is not None and self._ipc.thread is None:
            _quietly(self._ipc.close)
        # Before the joins: a thread asleep in epoll wakes, gets no events and can end.
        _quietly(self._epolls.close_all)
        self._join_cloned(left)
        # A start under way on another thread may be past its test of ``_closed``, its
        # thread in the table but not yet running (``_pal`` not set), so not joined
        # above: wait for it to start or give up, then join what started meanwhile.
        # (After the joins: a start waiting for a thread slot gets one as threads end.)
        # The second round runs even when no start is under way now: one may have
        # ended during the first round, after it listed the running threads.  With
        # nothing left to join it only lists the table; what did not end in time in
        # the first round is joined for no longer than what is left of ``timeout``.
        self._await_starts(deadline)
        self._join_cloned(left)
        self._adopted.forget_all()
        # Whatever is left in the table: the main thread, adopted threads, threads that
        # did not end in time, and the entry of a clone cut short by an interrupt.
        for thread in self._table.all():
            self._table.remove(thread)
            _quietly(thread.event.destroy)
        for worker in workers:
            _quietly(worker._event.destroy)
        _quietly(self._factory.close)
        if self.host.phase == self.profile.phase:
            self.host.phase = self._host_phase
        self._down = True

    def _join_cloned(self, left: Callable[[], float]) -> None:
        """Wake and join (within ``left()``) every thread in the table that runs."""
        cloned = [t for t in self._table.all() if t._pal is not None]
        for thread in cloned:
            _quietly(thread.event.set)
        for thread in cloned:
            assert thread._pal is not None
            thread._pal.join(left())

    def _starts_under_way(self) -> bool:
        """Whether a thread other than the caller is inside ``_clone`` on this LibOS.

        Read from the threads' stacks, not kept by the clone path: it costs that path
        nothing, and no interrupt can leave it wrong.  The caller's own stack does not
        count: a ``_clone`` under it (a signal handler that shuts down) cannot go on
        before this returns."""
        code = LibOS._clone.__code__
        me = _get_ident()
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            f: FrameType | None = frame
            while f is not None:
                if f.f_code is code and f.f_locals.get("self") is self:
                    return True
                f = f.f_back
        return False

    def _await_starts(self, deadline: float) -> bool:
        """Wait, until ``deadline`` (``time.monotonic``), for every start under way on
        another thread to have made its thread or given up; True if there were any.
        (Only shutdown waits so, after setting ``_closed``: no new start begins, so
        the few under way end soon; none signals its end, so this looks again after a
        pause that grows from 0.5 ms to 20 ms.)"""
        if not self._starts_under_way():
            return False
        pause = 0.0005
        while self._starts_under_way():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.02)
        return True

    def __repr__(self) -> str:
        return f"<LibOS {self.host.kind}/{self.events}{'+pool' if self.pool else ''}>"
