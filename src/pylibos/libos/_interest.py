"""The interest list of a LibOS epoll and the wait over it (see ``_epoll.py``).

An ``EpollInstance`` is one epoll: its entries, its PAL edge watch, its waiters.  Every
``Epoll`` object over it (the one that made it, and any from ``fromfd``) shares it, so the
instance holds the mechanism and the object holds ``select.epoll``'s argument rules and
its own ``closed`` flag.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import threading
import time
import weakref
from collections.abc import Callable

from .. import pal
from ..pal import WAIT_ERROR, WAIT_READ, Handle, Host, PalError, PalErrorCode
from ._epoll_events import (
    EPOLLET,
    EPOLLEXCLUSIVE,
    EPOLLONESHOT,
    EXCLUSIVE_OK,
    Entry,
    wait_flags,
)
from ._epoll_ready import _armed, _choose, _edge_entries, _still_pending
from ._epoll_table import EpollTable
from ._errno import ebadf, oserror
from ._event import RECHECK_S, PollableEvent

CurrentEvent = Callable[[], PollableEvent]
"""Gives the calling thread's pollable event: what a waiter sleeps on beside the handles."""


_RECHECK_US = int(RECHECK_S * 1_000_000)


# Every open epoll by its number, so fromfd finds it.  Numbers are host descriptors, so
# one table serves the whole process.
_by_number: weakref.WeakValueDictionary[int, EpollInstance] = weakref.WeakValueDictionary()


def by_number(number: int) -> EpollInstance | None:
    """The open epoll whose number is ``number``, if there is one."""
    inst = _by_number.get(number)
    return inst if inst is not None and not inst.closed else None


class EpollInstance:
    """One epoll: the interest list and its edge watch, shared by every object over it."""

    def __init__(self, host: Host, current_event: CurrentEvent, table: EpollTable | None) -> None:
        self.host = host
        self.current_event = current_event
        self.table = table
        try:
            self.watch = host.edge_watch_open()
        except PalError as exc:
            raise oserror(exc, "epoll_create") from exc
        self.number = host.descriptor_number(self.watch)
        # Serialises register, modify and unregister, as the kernel's ep->mtx does.
        self.ctl_lock = threading.Lock()
        self.lock = threading.Lock()
        # Guarded by lock.
        self.entries: dict[int, Entry] = {}
        self.waiters: set[PollableEvent] = set()
        # Edge-triggered entries taken from the watch ready but not reported (a poll's
        # maxevents was reached): still on the ready list, as on Linux.
        self.pending: dict[int, Entry] = {}
        self.closed = False
        self.shut_down = False  # closed by the LibOS's shutdown, not by the program
        if table is not None:
            table.add(self)
        _by_number[self.number] = self

    def _leaving_section(self) -> bool:
        """At the end of a change's marked critical section, before an owed Ctrl-C is
        raised: the sleepers are woken (the change stands, or was undone, and they look
        again; a wake for nothing only makes them look); returns False, the section's
        marker from then on."""
        self._wake_waiters()
        return False

    def _wake_waiters(self) -> None:
        """Set every sleeper's event.  One whose channel the host broke past repair (no
        new one to be had) is left to its own recheck (``RECHECK_S``): its failure is not
        the waker's, and must neither stop the other wakes nor undo the waker's change (or
        lose an owed Ctrl-C at a section's end)."""
        with self.lock:
            waiters = list(self.waiters)
        for event in waiters:
            with contextlib.suppress(OSError):
                event.set()

    @pal.marks_critical_sections
    def close(self) -> None:
        """Close the epoll; current waiters wake and return no events.  Marked closed and
        its handles and watch closed in one marked critical section: a Ctrl-C never
        leaves it closed with a handle open (a second close returns at once)."""
        _pal_critical = True
        try:
            with self.lock:
                if self.closed:
                    return
                self.closed = True
                entries, self.entries = list(self.entries.values()), {}
                waiters = list(self.waiters)
            if _by_number.get(self.number) is self:
                del _by_number[self.number]
            for entry in entries:
                self.host.close(entry.handle)
            self.host.close(self.watch)  # the number is free from here on
            if self.table is not None:
                self.table.discard(self)
        finally:
            _pal_critical = False
            if pal.critical_owed[0]:
                pal.critical_deliver()
        # The waiters woken outside the section: a waiter's event may be held by another
        # thread's rebuild (a handshake the host stalls), and a Ctrl-C must not wait.
        for event in waiters:
            event.set()

    # -- the interest list -------------------------------------------------------------

    def _open_fd(self, fd: int) -> Handle:
        """A PAL handle over ``fd``, or the error ``epoll_ctl`` gives for the descriptor."""
        try:
            return self.host.stream_from_fd(fd)
        except PalError as exc:
            if exc.code is PalErrorCode.NOTSUPPORT:
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM)) from None
            if exc.code is not PalErrorCode.BADHANDLE:
                raise oserror(exc, f"fd {fd}") from exc
        self._forget_closed(fd)
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def _forget_closed(self, fd: int, entry: Entry | None = None) -> None:
        """``fd`` was closed: Linux has taken it out of every interest list already.
        Given ``entry``, only that one goes, not one registered since under the number."""
        with self.lock:
            current = self.entries.get(fd)
            if current is None or (entry is not None and current is not entry):
                return
            del self.entries[fd]
        self.host.close(current.handle)  # the host dropped it from the watch already

    def _is_closed(self, fd: int) -> bool:
        try:
            self.host.close(self.host.stream_from_fd(fd))
        except PalError as exc:
            # A regular file now holds the number: what was registered is gone too.
            return exc.code in (PalErrorCode.BADHANDLE, PalErrorCode.NOTSUPPORT)
        return False

    def _check_fd(self, fd: int) -> None:
        self.host.close(self._open_fd(fd))
        self._refuse_itself(fd)

    def _refuse_itself(self, fd: int) -> None:
        """Linux refuses (EINVAL) an epoll put into, changed in or taken out of itself."""
        if fd == self.number:
            raise _einval()

    def _watch_edges(self, entry: Entry) -> None:
        try:
            self.host.edge_watch_add(
                self.watch,
                entry.handle,
                wait_flags(entry.mask),
                oneshot=bool(entry.mask & EPOLLONESHOT),
            )
        except PalError as exc:
            raise oserror(exc, f"fd {entry.fd}") from exc

    def _unwatch(self, entry: Entry) -> None:
        try:
            self.host.edge_watch_remove(self.watch, entry.handle)
        except PalError as exc:
            if exc.code is not PalErrorCode.BADHANDLE:  # BADHANDLE: the epoll closed
                raise oserror(exc, f"fd {entry.fd}") from exc

    @pal.marks_critical_sections
    def register(self, fd: int, eventmask: int) -> None:
        with self.ctl_lock:
            # One marked critical section (no wait in it but the locks' own, held for a
            # dict step): a Ctrl-C finds the handle either in the entries or closed.
            _pal_critical = True
            try:
                handle = self._open_fd(fd)
                added = False
                try:
                    self._refuse_itself(fd)
                    if eventmask & EPOLLEXCLUSIVE and eventmask & ~EXCLUSIVE_OK:
                        raise _einval()
                    entry = Entry(fd, eventmask, handle)
                    with self.lock:
                        exists = fd in self.entries
                    if exists:
                        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
                    if entry.edge:
                        self._watch_edges(entry)
                    with self.lock:
                        if not self.closed:
                            self.entries[fd] = entry
                            added = True
                    if not added:
                        raise ebadf(f"epoll {self.number} closed meanwhile")
                finally:
                    if not added:
                        self.host.close(handle)
            finally:
                _pal_critical = self._leaving_section()
                if pal.critical_owed[0]:
                    pal.critical_deliver()

    @pal.marks_critical_sections
    def modify(self, fd: int, eventmask: int) -> None:
        with self.ctl_lock:
            self._check_fd(fd)
            if eventmask & EPOLLEXCLUSIVE:
                raise _einval()  # EPOLLEXCLUSIVE is for EPOLL_CTL_ADD only
            # The mask's change and the edge watch's, one marked critical section: a
            # Ctrl-C between them would leave an edge-triggered mask with no watch (its
            # edges lost for good) or a watch for a level-triggered one.
            _pal_critical = True
            try:
                with self.lock:
                    entry = self.entries.get(fd)
                    if entry is None:
                        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
                    if entry.mask & EPOLLEXCLUSIVE:
                        raise _einval()  # an exclusive entry cannot be changed, only removed
                    was = entry.mask, entry.disabled
                    entry.mask = eventmask
                    entry.disabled = False
                try:
                    if entry.edge:
                        self._watch_edges(entry)
                    elif was[0] & EPOLLET:
                        self._unwatch(entry)
                except BaseException:
                    with self.lock:
                        entry.mask, entry.disabled = was
                    raise
            finally:
                _pal_critical = self._leaving_section()
                if pal.critical_owed[0]:
                    pal.critical_deliver()

    @pal.marks_critical_sections
    def unregister(self, fd: int) -> None:
        with self.ctl_lock:
            self._check_fd(fd)
            # The entry out and its handle closed are one marked critical section.
            _pal_critical = True
            try:
                with self.lock:
                    entry = self.entries.pop(fd, None)
                if entry is None:
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
                try:
                    if entry.edge:
                        self._unwatch(entry)
                finally:
                    self.host.close(entry.handle)
            finally:
                _pal_critical = self._leaving_section()
                if pal.critical_owed[0]:
                    pal.critical_deliver()

    # -- waiting -----------------------------------------------------------------------

    def poll(self, deadline: float | None, maxevents: int) -> list[tuple[int, int]]:
        """Wait (until ``deadline``, a ``time.monotonic`` value, or for ever) for events."""
        event = self.current_event()
        with self.lock:
            self.waiters.add(event)
        try:
            return self._wait(event, deadline, maxevents)
        except PalError as exc:
            raise oserror(exc, "epoll wait") from exc
        finally:
            with self.lock:
                self.waiters.discard(event)

    def _changed(self, entries: list[Entry], exc: PalError) -> bool:
        """True when ``exc`` comes from a handle closed under us by ``unregister`` or
        ``close`` on another thread, after ``entries`` were read: then read them anew."""
        if exc.code is not PalErrorCode.BADHANDLE:
            return False
        with self.lock:
            return self.closed or any(self.entries.get(e.fd) is not e for e in entries)

    def _wait(
        self, event: PollableEvent, deadline: float | None, maxevents: int
    ) -> list[tuple[int, int]]:
        host = self.host
        while True:
            with self.lock:
                if self.closed:
                    return []
                level, edges = _armed(self.entries.values())
                # Pending edges are polled like level-triggered entries for a round:
                # what the host says now is what Linux would report for them.
                polled = level + _still_pending(self.pending, self.entries)
            handles = [event.read_handle, *(e.handle for e in polled)]
            flags = [WAIT_READ, *(wait_flags(e.mask) for e in polled)]
            if edges:
                handles.append(self.watch)
                flags.append(WAIT_READ)
            # Never longer than RECHECK_S at a time: the thread's event may have been
            # given a new channel while this waiter slept on the old one.
            timeout_us = _RECHECK_US
            if deadline is not None:
                left = max(0, math.ceil((deadline - time.monotonic()) * 1e6))
                timeout_us = min(left, _RECHECK_US)
            try:
                ready = host.streams_wait_events(handles, flags, timeout_us)
            except PalError as exc:
                if self._changed(polled, exc) or handles[0] is not event.read_handle:
                    continue  # an entry, or the event's channel, changed under us
                raise
            if ready[0]:
                if event.is_set():
                    event.clear()
                else:
                    event.drain_spurious()
            polled_ready = ready[1 : 1 + len(polled)]
            # The host reports a closed descriptor as an error (POLLNVAL); Linux would
            # have dropped it from the list, so it is dropped here and not reported.
            for entry, got in zip(polled, polled_ready, strict=True):
                if got & WAIT_ERROR and self._is_closed(entry.fd):
                    self._forget_closed(entry.fd, entry)
            results = self._report(
                list(zip(polled, polled_ready, strict=True)), bool(edges and ready[-1]), maxevents
            )
            if results:
                return results
            if deadline is not None and time.monotonic() >= deadline:
                return []

    @pal.marks_critical_sections
    def _report(
        self, polled: list[tuple[Entry, int]], take: bool, maxevents: int
    ) -> list[tuple[int, int]]:
        """The events to return for what the host reported (``polled``, and the watch's
        edges if ``take``).  One marked critical section: a Ctrl-C never loses an edge
        taken from the watch, nor one left pending."""
        _pal_critical = True
        try:
            taken = self._take_edges(maxevents) if take else []
            with self.lock:
                return _choose(self.pending, self.entries, polled, taken, maxevents)
        finally:
            _pal_critical = False
            if pal.critical_owed[0]:
                pal.critical_deliver()

    def _take_edges(self, room: int) -> list[tuple[Entry, int]]:
        """The entries the host has queued edges of on the watch (at most ``room``),
        with the wait flags it gives each."""
        try:
            taken = self.host.edge_watch_take(self.watch, room)
        except PalError as exc:
            if exc.code is PalErrorCode.BADHANDLE and self.closed:
                return []
            raise
        results: list[tuple[Entry, int]] = []
        with self.lock:
            by_handle = _edge_entries(self.entries.values())
            for handle, got in taken:
                entry = by_handle.get(id(handle))
                if entry is None or entry.handle is not handle or entry.disabled:
                    continue  # unregistered or disabled since the host queued it
                results.append((entry, got))
        return results


def _einval() -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))
