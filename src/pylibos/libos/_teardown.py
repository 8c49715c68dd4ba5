"""The LibOS's teardown, and its fork-child handling: the base class ``LibOS`` derives from.

``shutdown`` stops the workers, waits for the threads (those running and the starts
under way on other threads) and releases every event, within its timeout, whatever
state the host is in.  A fork child's copy of a LibOS forgets the parent's threads
(``_forget_other_threads``), so that neither ``current_thread`` nor ``shutdown`` takes
them for its own.  None of it is on the thread-start path.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import CodeType, FrameType
from typing import ClassVar, Protocol

from ..pal import Host, PalError, ShutsDown
from ._async import AsyncWorker
from ._epoll_table import EpollTable
from ._event import EventFactory
from ._ipc import IpcWorker
from ._profile import Profile
from ._thread import Adoptions, LibOSThread, ThreadTable


class _Installed(Protocol):
    """What the LibOS asks of the ``Hook`` (``_hook``) installed over it, which knows it."""

    def uninstall(self) -> None: ...


_get_ident = threading.get_ident
_getpid = os.getpid
_JOIN_S = 5.0


# Every LibOS not yet collected; a fork child's copy of each forgets the parent's
# threads (``_forget_other_threads``).  One hook for all, registered once: a hook per
# LibOS could never be taken back.
_LIVE: weakref.WeakSet[Teardown] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for libos in list(_LIVE):
        libos._own_in_child()
        libos._forget_other_threads()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _quietly(step: Callable[[], object]) -> None:
    """Run one teardown step; a host already shut down makes it fail, and that is fine."""
    with contextlib.suppress(OSError, PalError):
        step()


class Teardown(ShutsDown):
    """What ``LibOS`` is made of for its teardown; the attributes it uses are the LibOS's."""

    # The code of ``LibOS._clone``, whose frames ``_starts_under_way`` looks for.
    _CLONE_CODE: ClassVar[CodeType]

    host: Host
    profile: Profile
    _closed: bool
    _down: bool
    _hook: _Installed | None
    _running: dict[int, LibOSThread]
    _running_pid: int
    _boot_pid: int
    _local: threading.local
    main_thread: LibOSThread
    _table: ThreadTable
    _factory: EventFactory
    _epolls: EpollTable
    _adopted: Adoptions
    _async: AsyncWorker | None
    _ipc: IpcWorker | None
    _host_phase: Callable[[str], AbstractContextManager[None]]

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
            # Destroyed, then out of the table: a shutdown a Ctrl-C cuts short between
            # the two leaves the entry for the next to finish (a second destroy is none).
            _quietly(thread.event.destroy)
            self._table.remove(thread)
        for worker in workers:
            _quietly(worker._event.destroy)
        _quietly(self._factory.close)
        if self.host.phase == self.profile.phase:
            self.host.phase = self._host_phase
        self._down = True

    def _join_cloned(self, left: Callable[[], float]) -> None:
        """Wake and join (within ``left()``) every thread in the table that runs, and every
        thread still doing its exit work (out of the table, its event not yet released:
        it leaves ``_running`` last), so that no event is released after this returns."""
        exiting = [t for t in list(self._running.values()) if t._pal is not None]
        cloned = {t.tid: t for t in self._table.all() if t._pal is not None}
        for thread in cloned.values():
            _quietly(thread.event.set)
        for thread in exiting:  # by tid: one dict lookup each, for thousands of threads
            cloned.setdefault(thread.tid, thread)
        me = _get_ident()
        for thread in cloned.values():
            assert thread._pal is not None
            if thread._pal.ident != me:  # the caller (a cloned thread) cannot end first
                thread._pal.join(left())

    def _starts_under_way(self) -> bool:
        """Whether a thread other than the caller is inside ``_clone`` on this LibOS.

        Read from the threads' stacks, not kept by the clone path: it costs that path
        nothing, and no interrupt can leave it wrong.  The caller's own stack does not
        count: a ``_clone`` under it (a signal handler that shuts down) cannot go on
        before this returns."""
        code = self._CLONE_CODE
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

    def _own_in_child(self) -> None:
        """In a fork child: a lock a thread of the parent held at the fork (a worker
        clearing its event, a thread setting one, a start taking a pooled event) would
        be held for ever here, where that thread does not exist, and the child's
        shutdown would wait for it for ever.  Each lock of the LibOS's is made anew: its
        events' (in the table, the pool and the workers'), the event factory's, the
        adoptions', the profile's, the epoll table's and its epolls', the workers'.
        The epolls forget their sleepers too: they are the parent's threads, whose
        events' channels are the parent's (the child's shutdown, closing the epolls,
        would set them and so write into the parent's channels)."""
        events = [t.event for t in self._table.values() if t.event is not None]
        for event in events + list(self._factory._free):
            event._lock = threading.Lock()
        for worker in (self._async, self._ipc):
            if worker is not None:
                worker._own_in_child()
        for holder in (self._factory, self._adopted, self.profile):
            holder._lock = threading.Lock()
        self._epolls.own_in_child()

    def _forget_other_threads(self) -> None:
        """In a fork child: only the forking thread lives on.  The C library hands the
        other threads' stacks, and so their idents, to the child's new threads, which
        must not be taken for the parent's LibOS threads by ``current_thread``.  (The
        interpreter drops the other threads' thread-locals itself.)  The dict is emptied
        in place, one C call: the forking thread, if it is a cloned one, holds it in
        ``PalThread._run``, and a Ctrl-C (main thread only, which is never a cloned one)
        finds it either whole or empty.

        The parent's other threads leave the thread table too (cloned ones, adopted
        ones, clones under way): shutdown would wake them through their events (whose
        channels are the parent's as well) and join threads that do not exist here for
        its whole timeout, and ``threads()`` would list them.  Their events are not
        destroyed: they are the parent's threads', and the child's copies of their
        descriptors go with the child.  The forking thread's own stays, and the
        LibOS's main thread.
        (A hook cut short by a KeyboardInterrupt, which the interpreter reports and
        swallows, leaves the rest listed: shutdown then joins them as before, within
        its timeout.)"""
        me = _get_ident()
        kept = self._running.get(me)
        self._running.clear()
        if kept is not None:
            self._running[me] = kept
        self._running_pid = _getpid()
        # The table keeps the LibOS's main thread and the forking thread's own (cloned,
        # adopted or main); every other entry is a thread of the parent's (running, an
        # adopted one, or a clone under way on another thread, not yet started or
        # waiting for a thread slot) that the child does not have and never will.
        keep = {t.tid for t in (kept, getattr(self._local, "thread", None)) if t is not None}
        main = getattr(self, "main_thread", None)
        if main is not None:
            keep.add(main.tid)
        table = self._table
        for thread in [t for t in table.values() if t.tid not in keep]:
            table.pop(thread.tid, None)
