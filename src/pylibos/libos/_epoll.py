"""epoll in the LibOS, with ``select.epoll``'s API (Gramine's ``libos_epoll.c``).

The interest list lives here.  A waiter hands the host one ``streams_wait_events`` call
over the PAL handles of the registered descriptors plus its own thread's pollable event.
``register``, ``modify``, ``unregister`` and ``close`` from another thread set the events
of the current waiters, which wake, rebuild their handle list and wait again.

Readiness of a descriptor is what the host reports for it: the descriptors are the
program's own, and the host kernel is where they live.  Wakeups through a waiter's event
carry no readiness at all: a waiter woken by one (a real interest-list change, or a wakeup
the host forged) re-reads the interest list and goes back to sleep, so it never returns an
event that is not there, and never returns early with nothing before its timeout.

Semantics beyond level-triggered polling:

* ``EPOLLONESHOT``: after an entry is reported it is disabled until ``modify``.
* ``EPOLLET``: a condition is reported once, then not watched until a later ``poll``
  finds it gone (checked with one zero-timeout host call at the start of each ``poll``).
  This is an approximation: Linux reports a new edge whenever data arrives, and the
  LibOS, which does not see the program's reads, only sees the condition come and go
  between its own polls.  So data that arrives after the program drained a descriptor
  (read until EAGAIN) but before its next ``poll`` starts is not reported until the
  condition has gone away once; Gramine avoids this by watching the reads themselves.
* ``EPOLLERR`` and ``EPOLLHUP`` are always reported, as on Linux.

``fileno()`` returns a number from the LibOS's own table (well above any real descriptor)
and ``fromfd`` finds the object by it; an epoll here has no host descriptor.

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
import itertools
import math
import os
import select
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from ..pal import (
    WAIT_ERROR,
    WAIT_HANG_UP,
    WAIT_PRI,
    WAIT_RDHUP,
    WAIT_READ,
    WAIT_WRITE,
    Handle,
    PalError,
    PalErrorCode,
)
from ._errno import oserror

if TYPE_CHECKING:
    from ._libos import LibOS

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
_FD_BASE = 1 << 24
_MAX_EVENTS = 1023  # what select.epoll uses for maxevents=-1 (FD_SETSIZE - 1)

_numbers = itertools.count(_FD_BASE)
_by_number: weakref.WeakValueDictionary[int, Epoll] = weakref.WeakValueDictionary()


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


class _Entry:
    __slots__ = ("disabled", "fd", "handle", "mask", "reported")

    def __init__(self, fd: int, mask: int, handle: Handle) -> None:
        self.fd = fd
        self.mask = mask
        self.handle = handle
        self.disabled = False
        self.reported = 0


class EpollTable:
    """The epoll objects of one LibOS, so shutdown closes them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Epoll] = set()

    def add(self, ep: Epoll) -> int:
        number = next(_numbers)
        with self._lock:
            self._open.add(ep)
        _by_number[number] = ep
        return number

    def discard(self, ep: Epoll) -> None:
        with self._lock:
            self._open.discard(ep)

    def close_all(self) -> None:
        with self._lock:
            eps = list(self._open)
        for ep in eps:
            ep.close()


class Epoll:
    """``select.epoll`` over the program's descriptors, waited on through the PAL."""

    def __init__(self, libos: LibOS, table: EpollTable, sizehint: int = -1, flags: int = 0) -> None:
        if sizehint != -1 and sizehint <= 0:
            raise ValueError("negative sizehint")
        if flags and flags != select.EPOLL_CLOEXEC:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self._libos = libos
        self._host = libos.host
        self._table = table
        self._lock = threading.Lock()
        # Guarded by _lock.
        self._entries: dict[int, _Entry] = {}
        self._waiters: set[Any] = set()
        self._closed = False
        self._fileno = table.add(self)

    @classmethod
    def fromfd(cls, fd: int) -> Epoll:
        """The open epoll object whose ``fileno()`` is ``fd``."""
        ep = _by_number.get(fd)
        if ep is None or ep.closed:
            raise OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: no LibOS epoll {fd}")
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

    def _wake_waiters(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for event in waiters:
            event.set()

    def _open_fd(self, fd: int) -> Handle:
        """A PAL handle over ``fd``, or the error ``epoll_ctl`` gives for the descriptor."""
        try:
            return self._host.stream_from_fd(fd)
        except PalError as exc:
            if exc.code is PalErrorCode.NOTSUPPORT:
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM)) from None
            if exc.code is not PalErrorCode.BADHANDLE:
                raise oserror(exc, f"fd {fd}") from None
        self._forget_closed(fd)
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def _forget_closed(self, fd: int, entry: _Entry | None = None) -> None:
        """``fd`` was closed: Linux has taken it out of every interest list already.
        Given ``entry``, only that one goes, not one registered since under the number."""
        with self._lock:
            current = self._entries.get(fd)
            if current is None or (entry is not None and current is not entry):
                return
            del self._entries[fd]
        self._host.close(current.handle)

    def _is_closed(self, fd: int) -> bool:
        try:
            self._host.close(self._host.stream_from_fd(fd))
        except PalError as exc:
            # A regular file now holds the number: what was registered is gone too.
            return exc.code in (PalErrorCode.BADHANDLE, PalErrorCode.NOTSUPPORT)
        return False

    def _check_fd(self, fd: int) -> None:
        self._host.close(self._open_fd(fd))

    def register(self, fd: int | _HasFileno, eventmask: int = _DEFAULT_MASK) -> None:
        self._check_open()
        fd = _fd_of(fd)
        handle = self._open_fd(fd)
        with self._lock:
            closed, exists = self._closed, fd in self._entries
            if not closed and not exists:
                self._entries[fd] = _Entry(fd, eventmask, handle)
        if closed or exists:
            self._host.close(handle)
            self._check_open()
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        self._wake_waiters()

    def modify(self, fd: int | _HasFileno, eventmask: int) -> None:
        self._check_open()
        fd = _fd_of(fd)
        self._check_fd(fd)
        with self._lock:
            entry = self._entries.get(fd)
            if entry is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            entry.mask = eventmask
            entry.disabled = False
            entry.reported = 0
        self._wake_waiters()

    def unregister(self, fd: int | _HasFileno) -> None:
        self._check_open()
        fd = _fd_of(fd)
        self._check_fd(fd)
        with self._lock:
            entry = self._entries.pop(fd, None)
            if entry is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        self._host.close(entry.handle)
        self._wake_waiters()

    def close(self) -> None:
        """Close the object; current waiters wake and return no events."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            self._host.close(entry.handle)
        self._table.discard(self)
        self._wake_waiters()

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        """Wait for events; returns ``[(fd, events), ...]`` like ``select.epoll.poll``."""
        self._check_open()
        deadline = self._deadline(timeout)
        if maxevents == -1:
            maxevents = _MAX_EVENTS
        elif maxevents <= 0:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        event = self._libos.current_thread().event
        with self._lock:
            self._waiters.add(event)
        try:
            self._rearm_edges()
            return self._wait(event, deadline, maxevents)
        except PalError as exc:
            raise oserror(exc, "epoll wait") from None
        finally:
            with self._lock:
                self._waiters.discard(event)

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

    def _changed(self, entries: list[_Entry], exc: PalError) -> bool:
        """True when ``exc`` comes from a handle closed under us by ``unregister`` or
        ``close`` on another thread, after ``entries`` were read: then read them anew."""
        if exc.code is not PalErrorCode.BADHANDLE:
            return False
        with self._lock:
            return self._closed or any(self._entries.get(e.fd) is not e for e in entries)

    def _rearm_edges(self) -> None:
        """Forget reported edge-triggered conditions that have since gone away."""
        while True:
            with self._lock:
                armed = [e for e in self._entries.values() if e.reported]
            if not armed:
                return
            try:
                ready = self._host.streams_wait_events(
                    [e.handle for e in armed], [_wait_flags(e.mask) for e in armed], 0
                )
            except PalError as exc:
                if self._changed(armed, exc):
                    continue
                raise
            break
        with self._lock:
            for entry, flags in zip(armed, ready, strict=True):
                entry.reported &= _epoll_events(flags, entry.mask)

    def _wait(self, event: Any, deadline: float | None, maxevents: int) -> list[tuple[int, int]]:
        while True:
            with self._lock:
                if self._closed:
                    return []
                # An edge-triggered entry whose error or hang-up was reported is left out:
                # the host would report it again at once, and it is nothing fresh.
                entries = [
                    e
                    for e in self._entries.values()
                    if not e.disabled and not e.reported & (EPOLLERR | EPOLLHUP)
                ]
                handles = [event.read_handle, *(e.handle for e in entries)]
                flags = [WAIT_READ, *(_wait_flags(e.mask & ~e.reported) for e in entries)]
            timeout_us = None
            if deadline is not None:
                timeout_us = max(0, math.ceil((deadline - time.monotonic()) * 1e6))
            try:
                ready = self._host.streams_wait_events(handles, flags, timeout_us)
            except PalError as exc:
                if self._changed(entries, exc):
                    continue
                raise
            if ready[0]:
                if event.is_set():
                    event.clear()
                else:
                    event.drain_spurious()
            # The host reports a closed descriptor as an error (POLLNVAL); Linux would
            # have dropped it from the list, so it is dropped here and not reported.
            for entry, got in zip(entries, ready[1:], strict=True):
                if got & WAIT_ERROR and self._is_closed(entry.fd):
                    self._forget_closed(entry.fd, entry)
            results: list[tuple[int, int]] = []
            with self._lock:
                for entry, got in zip(entries, ready[1:], strict=True):
                    if self._entries.get(entry.fd) is not entry or entry.disabled:
                        continue  # changed while we slept; the next round sees it anew
                    events = _epoll_events(got, entry.mask)
                    if entry.mask & EPOLLET:
                        fresh = events & ~entry.reported
                        entry.reported |= events
                        events = fresh
                    if not events:
                        continue
                    results.append((entry.fd, events))
                    if entry.mask & EPOLLONESHOT:
                        entry.disabled = True
                    if len(results) == maxevents:
                        break
            if results:
                return results
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def __enter__(self) -> Epoll:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LibOS epoll {self._fileno} {'closed' if self._closed else 'open'}>"
