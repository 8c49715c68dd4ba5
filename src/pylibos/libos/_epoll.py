"""epoll in the LibOS, with ``select.epoll``'s API (Gramine's ``libos_epoll.c``).

The interest list lives here.  A waiter hands the host one ``streams_wait_events`` call
over the PAL handles of the registered descriptors plus its own thread's pollable event.
``register``, ``modify``, ``unregister`` and ``close`` from another thread set the events
of the current waiters, which wake, rebuild their handle list and wait again.  An
``Epoll`` needs only the PAL host and a way to find the calling thread's event.

Readiness of a descriptor is what the host reports for it: the descriptors are the
program's own, and the host kernel is where they live.  Wakeups through a waiter's event
carry no readiness at all: a waiter woken by one (a real interest-list change, or a wakeup
the host forged) re-reads the interest list and goes back to sleep, so it never returns an
event that is not there, and never returns early with nothing before its timeout.

Edge-triggered entries
----------------------
Linux queues an ``EPOLLET`` entry whenever its file is woken (data arrives, room to write
appears, the peer hangs up) and then reports everything ready at that moment: after data
arrives on a writable socket that is ``EPOLLIN | EPOLLOUT``, and more data on an unread
socket is reported again.  Gramine follows edges by watching the reads and writes that
pass through it; here the program reads its own descriptors, so only the host kernel sees
them.  Each epoll therefore has a PAL *edge watch* (a host epoll, every descriptor in it
edge-triggered; see ``Host.edge_watch_open``): an ``EPOLLET`` entry is added to it, a wait
includes the watch's handle, and when that wakes, one take brings the queued edges with
their full readiness.  The kernel's own bookkeeping makes this exact, and it costs host
calls only where edges are used: one ``epoll_ctl`` per register, modify or unregister of
an edge-triggered entry, one ``epoll_wait`` per wake with edges queued.  A level-triggered
wait is one ``poll``, as before.  ``EPOLLONESHOT`` on an edge-triggered entry is passed to
the watch too, so the host queues it no more until ``modify``.

Other semantics: ``EPOLLONESHOT`` disables a reported entry until ``modify``;
``EPOLLERR`` and ``EPOLLHUP`` are always reported, as on Linux.

The object, its number and ``fromfd``
-------------------------------------
``fileno()`` is the number of the edge watch's host descriptor: a real epoll descriptor,
close-on-exec, which the program can pass to ``os.get_inheritable`` or ``os.fstat``.  (The
LibOS only hands the number out; it never acts on it.)  ``Epoll.fromfd(n)`` gives a new
object over the epoll numbered ``n``, as ``select.epoll.fromfd`` wraps a descriptor
without duplicating it: both objects share the interest list, and closing either closes
the epoll.  The other object is then not ``closed``, its ``fileno()`` still gives the
number, and its other calls raise ``OSError(EBADF)``, as on Linux.  Where a native
program would be at fault the model is stricter: a number that is not an open LibOS epoll
gives ``EBADF`` even if it is open as something else (natively ``EINVAL``, or a working
epoll made without the LibOS); an object whose epoll was closed never acts on a newer one
that got the same number; and an object dropped without ``close()`` is not closed when it
is collected, as ``select.epoll`` is: its epoll lives until closed through another object
or the LibOS shuts down.  Registered in another epoll, the number is readable only while
edges are queued on the watch, not while level-triggered entries are ready.

Errors follow ``epoll_ctl``, which checks the descriptor before the interest list: a
closed descriptor is ``EBADF`` and a regular file ``EPERM`` whether or not it is
registered, and only then come ``EEXIST`` and ``ENOENT``.  Linux drops a descriptor from
every interest list when it is closed; here the entry of a registered descriptor is
dropped when the LibOS finds it closed: ``register``, ``modify`` or ``unregister`` on
it, or a ``poll`` where the host reports an error on it.  (A descriptor closed and its
number reused before then is not told apart from the new one: the entry stays.)
"""

from __future__ import annotations

import errno
import math
import operator
import os
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from ..pal import (
    WAIT_ERROR,
    WAIT_HANG_UP,
    WAIT_PRI,
    WAIT_RDHUP,
    WAIT_READ,
    WAIT_WRITE,
    Handle,
    Host,
    PalError,
    PalErrorCode,
)
from ._errno import oserror
from ._event import PollableEvent

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLPRI = select.EPOLLPRI
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = select.EPOLLRDHUP
EPOLLET = select.EPOLLET
EPOLLONESHOT = select.EPOLLONESHOT
EPOLLRDNORM = select.EPOLLRDNORM
EPOLLWRNORM = select.EPOLLWRNORM

_READS = EPOLLIN | EPOLLRDNORM
_WRITES = EPOLLOUT | EPOLLWRNORM
_DEFAULT_MASK = EPOLLIN | EPOLLPRI | EPOLLOUT
_MAX_EVENTS = 1023  # what select.epoll uses for maxevents=-1 (FD_SETSIZE - 1)

CurrentEvent = Callable[[], PollableEvent]
"""Gives the calling thread's pollable event: what a waiter sleeps on beside the handles."""


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def _wait_flags(mask: int) -> int:
    flags = 0
    if mask & _READS:
        flags |= WAIT_READ
    if mask & _WRITES:
        flags |= WAIT_WRITE
    if mask & EPOLLPRI:
        flags |= WAIT_PRI
    if mask & EPOLLRDHUP:
        flags |= WAIT_RDHUP
    return flags


def _epoll_events(flags: int, mask: int) -> int:
    events = EPOLLERR if flags & WAIT_ERROR else 0
    if flags & WAIT_HANG_UP:
        events |= EPOLLHUP
    if flags & WAIT_READ:
        events |= mask & _READS
    if flags & WAIT_WRITE:
        events |= mask & _WRITES
    if flags & WAIT_PRI:
        events |= mask & EPOLLPRI
    if flags & WAIT_RDHUP:
        events |= mask & EPOLLRDHUP
    return events


def _fd_of(fd: int | _HasFileno) -> int:
    if not isinstance(fd, int):
        fileno = getattr(fd, "fileno", None)
        if fileno is None:
            raise TypeError(
                f"argument must be an int, or have a fileno() method, not {type(fd).__name__}"
            )
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _ebadf(what: str) -> OSError:
    return OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: {what}")


class _Entry:
    __slots__ = ("disabled", "fd", "handle", "mask")

    def __init__(self, fd: int, mask: int, handle: Handle) -> None:
        self.fd = fd
        self.mask = mask
        self.handle = handle
        self.disabled = False

    @property
    def edge(self) -> bool:
        return bool(self.mask & EPOLLET)


# Every open epoll by its number, so fromfd finds it.  Numbers are host descriptors, so
# one table serves the whole process.
_by_number: weakref.WeakValueDictionary[int, _Instance] = weakref.WeakValueDictionary()


class EpollTable:
    """The epoll instances of one LibOS, so shutdown closes them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[_Instance] = set()

    def add(self, instance: _Instance) -> None:
        with self._lock:
            self._open.add(instance)

    def discard(self, instance: _Instance) -> None:
        with self._lock:
            self._open.discard(instance)

    def close_all(self) -> None:
        with self._lock:
            instances = list(self._open)
        for instance in instances:
            owner = instance.owner()
            if owner is not None:
                owner._closed = True  # as if the program had closed it; copies see EBADF
            instance.close()


class _Instance:
    """One epoll: the interest list and its edge watch, shared by every object over it."""

    def __init__(
        self, owner: Epoll, host: Host, current_event: CurrentEvent, table: EpollTable | None
    ) -> None:
        self.owner = weakref.ref(owner)  # the object that made it
        self.host = host
        self.current_event = current_event
        self.table = table
        try:
            self.watch = host.edge_watch_open()
        except PalError as exc:
            raise oserror(exc, "epoll_create") from None
        self.number = host.descriptor_number(self.watch)
        # Serialises register, modify and unregister, as the kernel's ep->mtx does.
        self.ctl_lock = threading.Lock()
        self.lock = threading.Lock()
        # Guarded by lock.
        self.entries: dict[int, _Entry] = {}
        self.waiters: set[PollableEvent] = set()
        self.closed = False
        if table is not None:
            table.add(self)
        _by_number[self.number] = self

    def wake_waiters(self) -> None:
        with self.lock:
            waiters = list(self.waiters)
        for event in waiters:
            event.set()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            entries, self.entries = list(self.entries.values()), {}
        if _by_number.get(self.number) is self:
            del _by_number[self.number]
        for entry in entries:
            self.host.close(entry.handle)
        self.host.close(self.watch)  # the number is free from here on
        if self.table is not None:
            self.table.discard(self)
        self.wake_waiters()


class Epoll:
    """``select.epoll`` over the program's descriptors, waited on through the PAL.

    ``current_event`` gives the calling thread's pollable event; ``table``, if given,
    collects the epoll so the LibOS can close it at shutdown.
    """

    _inst: _Instance | None

    def __init__(
        self,
        host: Host,
        current_event: CurrentEvent,
        sizehint: int = -1,
        flags: int = 0,
        *,
        table: EpollTable | None = None,
    ) -> None:
        sizehint = operator.index(sizehint)
        flags = operator.index(flags)
        if sizehint != -1 and sizehint <= 0:
            raise ValueError("negative sizehint")
        if flags and flags != select.EPOLL_CLOEXEC:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self._closed = False
        self._inst = _Instance(self, host, current_event, table)
        self._fileno = self._inst.number

    @classmethod
    def fromfd(cls, fd: int) -> Epoll:
        """A new object over the epoll numbered ``fd``, sharing it (no duplicate is made).

        Like ``select.epoll.fromfd`` this does not check ``fd``: using the object fails
        with ``EBADF`` if ``fd`` is not an open LibOS epoll.  A negative ``fd`` is refused
        (CPython makes a new epoll for -1).
        """
        fd = operator.index(fd)
        if fd < 0:
            # CPython's fromfd(-1) makes a new epoll; there is no LibOS here to make it on.
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        ep = cls.__new__(cls)
        inst = _by_number.get(fd)
        ep._inst = inst if inst is not None and not inst.closed else None
        ep._fileno = fd
        ep._closed = False
        return ep

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        self._check_open()
        return self._fileno

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed epoll object")

    def _open(self) -> _Instance:
        """The epoll this object stands for, or EBADF if it was closed through another."""
        self._check_open()
        inst = self._inst
        if inst is None or inst.closed:
            raise _ebadf(f"no open LibOS epoll {self._fileno}")
        return inst

    def _open_fd(self, inst: _Instance, fd: int) -> Handle:
        """A PAL handle over ``fd``, or the error ``epoll_ctl`` gives for the descriptor."""
        try:
            return inst.host.stream_from_fd(fd)
        except PalError as exc:
            if exc.code is PalErrorCode.NOTSUPPORT:
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM)) from None
            if exc.code is not PalErrorCode.BADHANDLE:
                raise oserror(exc, f"fd {fd}") from None
        self._forget_closed(inst, fd)
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    @staticmethod
    def _forget_closed(inst: _Instance, fd: int, entry: _Entry | None = None) -> None:
        """``fd`` was closed: Linux has taken it out of every interest list already.
        Given ``entry``, only that one goes, not one registered since under the number."""
        with inst.lock:
            current = inst.entries.get(fd)
            if current is None or (entry is not None and current is not entry):
                return
            del inst.entries[fd]
        inst.host.close(current.handle)  # the host dropped it from the watch already

    @staticmethod
    def _is_closed(inst: _Instance, fd: int) -> bool:
        try:
            inst.host.close(inst.host.stream_from_fd(fd))
        except PalError as exc:
            # A regular file now holds the number: what was registered is gone too.
            return exc.code in (PalErrorCode.BADHANDLE, PalErrorCode.NOTSUPPORT)
        return False

    def _check_fd(self, inst: _Instance, fd: int) -> None:
        inst.host.close(self._open_fd(inst, fd))

    @staticmethod
    def _watch_edges(inst: _Instance, entry: _Entry) -> None:
        try:
            inst.host.edge_watch_add(
                inst.watch,
                entry.handle,
                _wait_flags(entry.mask),
                oneshot=bool(entry.mask & EPOLLONESHOT),
            )
        except PalError as exc:
            raise oserror(exc, f"fd {entry.fd}") from None

    def register(self, fd: int | _HasFileno, eventmask: int = _DEFAULT_MASK) -> None:
        inst = self._open()
        fd = _fd_of(fd)
        with inst.ctl_lock:
            handle = self._open_fd(inst, fd)
            added = False
            try:
                entry = _Entry(fd, eventmask, handle)
                with inst.lock:
                    exists = fd in inst.entries
                if exists:
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
                if entry.edge:
                    self._watch_edges(inst, entry)
                with inst.lock:
                    if not inst.closed:
                        added = True
                        inst.entries[fd] = entry
                if not added:
                    self._open()  # closed meanwhile: raises
            finally:
                if not added:
                    inst.host.close(handle)
        inst.wake_waiters()

    def modify(self, fd: int | _HasFileno, eventmask: int) -> None:
        inst = self._open()
        fd = _fd_of(fd)
        with inst.ctl_lock:
            self._check_fd(inst, fd)
            with inst.lock:
                entry = inst.entries.get(fd)
                if entry is None:
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
                was = entry.mask, entry.disabled
                entry.mask = eventmask
                entry.disabled = False
            try:
                if entry.edge:
                    self._watch_edges(inst, entry)
                elif was[0] & EPOLLET:
                    self._unwatch(inst, entry)
            except BaseException:
                with inst.lock:
                    entry.mask, entry.disabled = was
                raise
        inst.wake_waiters()

    @staticmethod
    def _unwatch(inst: _Instance, entry: _Entry) -> None:
        try:
            inst.host.edge_watch_remove(inst.watch, entry.handle)
        except PalError as exc:
            if exc.code is not PalErrorCode.BADHANDLE:  # BADHANDLE: the epoll closed
                raise oserror(exc, f"fd {entry.fd}") from None

    def unregister(self, fd: int | _HasFileno) -> None:
        inst = self._open()
        fd = _fd_of(fd)
        with inst.ctl_lock:
            self._check_fd(inst, fd)
            with inst.lock:
                entry = inst.entries.pop(fd, None)
            if entry is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            try:
                if entry.edge:
                    self._unwatch(inst, entry)
            finally:
                inst.host.close(entry.handle)
        inst.wake_waiters()

    def close(self) -> None:
        """Close the object and its epoll; current waiters wake and return no events."""
        if self._closed:
            return
        self._closed = True
        if self._inst is not None:
            self._inst.close()

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        """Wait for events; returns ``[(fd, events), ...]`` like ``select.epoll.poll``."""
        self._check_open()
        deadline = self._deadline(timeout)
        if maxevents == -1:
            maxevents = _MAX_EVENTS
        elif maxevents <= 0:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        inst = self._open()
        event = inst.current_event()
        with inst.lock:
            inst.waiters.add(event)
        try:
            return self._wait(inst, event, deadline, maxevents)
        except PalError as exc:
            raise oserror(exc, "epoll wait") from None
        finally:
            with inst.lock:
                inst.waiters.discard(event)

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        if timeout is None:
            return None
        if not isinstance(timeout, int | float):
            raise TypeError(f"timeout must be an integer or None, got {type(timeout).__name__}")
        if math.isnan(timeout):
            raise ValueError("Invalid value NaN (not a number)")
        if timeout < 0:
            return None
        return time.monotonic() + timeout

    @staticmethod
    def _changed(inst: _Instance, entries: list[_Entry], exc: PalError) -> bool:
        """True when ``exc`` comes from a handle closed under us by ``unregister`` or
        ``close`` on another thread, after ``entries`` were read: then read them anew."""
        if exc.code is not PalErrorCode.BADHANDLE:
            return False
        with inst.lock:
            return inst.closed or any(inst.entries.get(e.fd) is not e for e in entries)

    def _wait(
        self, inst: _Instance, event: PollableEvent, deadline: float | None, maxevents: int
    ) -> list[tuple[int, int]]:
        host = inst.host
        while True:
            with inst.lock:
                if inst.closed:
                    return []
                level = [e for e in inst.entries.values() if not e.disabled and not e.edge]
                edges = any(not e.disabled and e.edge for e in inst.entries.values())
            handles = [event.read_handle, *(e.handle for e in level)]
            flags = [WAIT_READ, *(_wait_flags(e.mask) for e in level)]
            if edges:
                handles.append(inst.watch)
                flags.append(WAIT_READ)
            timeout_us = None
            if deadline is not None:
                timeout_us = max(0, math.ceil((deadline - time.monotonic()) * 1e6))
            try:
                ready = host.streams_wait_events(handles, flags, timeout_us)
            except PalError as exc:
                if self._changed(inst, level, exc):
                    continue
                raise
            if ready[0]:
                if event.is_set():
                    event.clear()
                else:
                    event.drain_spurious()
            level_ready = ready[1 : 1 + len(level)]
            # The host reports a closed descriptor as an error (POLLNVAL); Linux would
            # have dropped it from the list, so it is dropped here and not reported.
            for entry, got in zip(level, level_ready, strict=True):
                if got & WAIT_ERROR and self._is_closed(inst, entry.fd):
                    self._forget_closed(inst, entry.fd, entry)
            results: list[tuple[int, int]] = []
            with inst.lock:
                for entry, got in zip(level, level_ready, strict=True):
                    if inst.entries.get(entry.fd) is not entry or entry.disabled:
                        continue  # changed while we slept; the next round sees it anew
                    events = _epoll_events(got, entry.mask)
                    if not events:
                        continue
                    results.append((entry.fd, events))
                    if entry.mask & EPOLLONESHOT:
                        entry.disabled = True
                    if len(results) == maxevents:
                        break
            if edges and ready[-1] and len(results) < maxevents:
                results += self._take_edges(inst, maxevents - len(results))
            if results:
                return results
            if deadline is not None and time.monotonic() >= deadline:
                return []

    @staticmethod
    def _take_edges(inst: _Instance, room: int) -> list[tuple[int, int]]:
        """The edges the host has queued on the watch, at most ``room`` of them."""
        try:
            taken = inst.host.edge_watch_take(inst.watch, room)
        except PalError as exc:
            if exc.code is PalErrorCode.BADHANDLE and inst.closed:
                return []
            raise
        results: list[tuple[int, int]] = []
        with inst.lock:
            by_handle = {id(e.handle): e for e in inst.entries.values() if e.edge}
            for handle, got in taken:
                entry = by_handle.get(id(handle))
                if entry is None or entry.handle is not handle or entry.disabled:
                    continue  # unregistered or disabled since the host queued it
                events = _epoll_events(got, entry.mask)
                if not events:
                    continue
                results.append((entry.fd, events))
                if entry.mask & EPOLLONESHOT:
                    entry.disabled = True
        return results

    def __enter__(self) -> Epoll:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LibOS epoll {self._fileno} {'closed' if self._closed else 'open'}>"
