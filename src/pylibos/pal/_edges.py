"""Edge watches: the host epoll behind the LibOS's edge-triggered epoll.

The LibOS's epoll reports an edge-triggered descriptor again whenever new data (or room,
or a hang-up) arrives, as Linux does.  Gramine learns of edges by watching the program's
reads and writes, which all pass through it; here the program reads its own descriptors
directly, so only the host kernel sees the edges.  An edge watch is a host epoll with
every descriptor in EPOLLET mode: the kernel queues a descriptor whenever it is woken,
and a take reports its full readiness at that moment, exactly what an EPOLLET
registration of the program's would report.  The watch's handle is readable while
something is queued, so it is waited on with streams_wait_events beside the other
handles, and taken from only when it wakes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading

from ._core import HostCore
from ._errors import PalError, PalErrorCode
from ._handle import Handle, HandleKind
from ._identity import HOST_EPOLL, EventfdRegistry
from ._wait import WAIT_ERROR, WAIT_HANG_UP, WAIT_PRI, WAIT_RDHUP, WAIT_READ, WAIT_WRITE

# How WAIT_* flags and epoll's bits correspond (an edge watch speaks epoll to the host).
_EPOLL_BITS = (
    (WAIT_READ, select.EPOLLIN),
    (WAIT_WRITE, select.EPOLLOUT),
    (WAIT_PRI, select.EPOLLPRI),
    (WAIT_RDHUP, select.EPOLLRDHUP),
    (WAIT_ERROR, select.EPOLLERR),
    (WAIT_HANG_UP, select.EPOLLHUP),
)

_WATCH_CLOSED = "edge watch is closed"

# Serialises every change to a watch's entries with a rebuild of the watch, so no entry
# added meanwhile is left in the epoll the rebuild replaces.
_entries_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A parent's thread may have held the lock at the fork; the child has no such thread.
    global _entries_lock
    _entries_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _watch(epoll: select.epoll, fd: int, mask: int) -> None:
    try:
        epoll.register(fd, mask)
    except FileExistsError:
        epoll.modify(fd, mask)


def _unwatch(epoll: select.epoll, fd: int) -> None:
    try:
        epoll.unregister(fd)
    except FileNotFoundError:
        pass  # not watched (any more)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise


class Edges(HostCore):
    """Open an edge watch, add and remove descriptors, take the queued edges."""

    def edge_watch_open(self) -> Handle:
        """A new edge watch (one host call: ``epoll_create``)."""
        self._alive()
        epoll = self._call("epoll_create", "epoll_create", HOST_EPOLL)
        handle = Handle(HandleKind.EDGES, "edges:", raw=True, nonblocking=True, fd=epoll.fileno())
        handle._epoll = epoll
        return self._track(handle)

    def edge_watch_add(
        self, watch: Handle, handle: Handle, events: int, *, oneshot: bool = False
    ) -> None:
        """Watch ``handle`` (from ``stream_from_fd``) for edges of ``events`` (WAIT_*
        flags), or change what is watched if it is watched already.  Like ``epoll_ctl``,
        this queues the descriptor at once if it is ready now.  With ``oneshot`` it is
        queued once, then not again until the next ``edge_watch_add``."""
        self._check(watch, HandleKind.EDGES)
        self._check(handle, HandleKind.FD)
        assert watch._epoll is not None
        mask = select.EPOLLET | (select.EPOLLONESHOT if oneshot else 0)
        for flag, bit in _EPOLL_BITS:
            if events & flag and not flag & (WAIT_ERROR | WAIT_HANG_UP):
                mask |= bit
        with _entries_lock:
            # Known before the kernel can queue it, or a take would drop it as forged.
            previous = watch._watched.get(handle._fd)
            previous_mask = watch._masks.get(handle._fd)
            watch._watched[handle._fd] = handle
            watch._masks[handle._fd] = mask
            try:
                self._call("epoll_ctl", handle.uri, _watch, watch._epoll, handle._fd, mask)
            except (PalError, ValueError) as exc:
                if watch._watched.get(handle._fd) is handle:
                    if previous is None or previous_mask is None:
                        del watch._watched[handle._fd]
                        watch._masks.pop(handle._fd, None)
                    else:
                        watch._watched[handle._fd] = previous
                        watch._masks[handle._fd] = previous_mask
                if isinstance(exc, PalError):
                    raise
                # ValueError: the watch was closed by another thread.
                raise PalError(PalErrorCode.BADHANDLE, _WATCH_CLOSED) from None

    def edge_watch_remove(self, watch: Handle, handle: Handle) -> None:
        """Stop watching ``handle``.  A descriptor the program has closed already left
        the watch then (the kernel drops it), so that is no error."""
        self._check(watch, HandleKind.EDGES)
        assert watch._epoll is not None
        with _entries_lock:
            if watch._watched.get(handle._fd) is handle:
                del watch._watched[handle._fd]
                watch._masks.pop(handle._fd, None)
            with contextlib.suppress(ValueError):  # the watch closed meanwhile
                self._call("epoll_ctl", handle.uri, _unwatch, watch._epoll, handle._fd)

    def edge_watch_take(self, watch: Handle, max_events: int) -> list[tuple[Handle, int]]:
        """Up to ``max_events`` queued edges, without waiting: each watched handle with
        its readiness now (WAIT_* flags).  What is left stays queued for the next take.
        A descriptor the host names that is not watched is left out, and taken out of
        the watch."""
        self._check(watch, HandleKind.EDGES)
        assert watch._epoll is not None
        try:
            got = self._call("epoll_wait", "epoll_wait", watch._epoll.poll, 0, max_events)
        except ValueError:
            raise PalError(PalErrorCode.BADHANDLE, _WATCH_CLOSED) from None
        edges: list[tuple[Handle, int]] = []
        registry = watch._ident if isinstance(watch._ident, EventfdRegistry) else None
        for fd, mask in got:
            handle = watch._watched.get(fd)
            if registry is not None and registry.foreign_entry(watch._fd, fd):
                # The host added a file of its own under this number (copying the
                # watch from our table): its readiness is not the program's, and a
                # level-triggered one would keep the watch readable for ever, its
                # waiters spinning.  No epoll_ctl of ours can name the host's file, so
                # the watch is made anew, on the same number; the edges of this take
                # are queued again there by the re-adds.
                self._rebuild_watch(watch, registry)
                return []
            if handle is None:
                # Not watched any more (removed since the kernel queued it), or the
                # host's under a number closed here: if ours cannot take it out, the
                # entry is the host's, and the watch is made anew as above.
                try:
                    self._call("epoll_ctl", "epoll_ctl", watch._epoll.unregister, fd)
                except PalError:
                    self._rebuild_watch(watch, registry)
                    return []
                except ValueError:
                    pass  # the watch closed meanwhile
                continue
            if handle.closed:
                continue
            flags = 0
            for flag, bit in _EPOLL_BITS:
                if mask & bit:
                    flags |= flag
            edges.append((handle, flags))
        return edges

    def _rebuild_watch(self, watch: Handle, registry: EventfdRegistry | None) -> None:
        """Put a new host epoll at the watch's number, holding only our entries."""
        assert watch._epoll is not None
        with _entries_lock:
            fresh = self._call("epoll_create", watch.uri, HOST_EPOLL)
            try:
                for fd, handle in list(watch._watched.items()):
                    mask = watch._masks.get(fd)
                    if handle.closed or mask is None:
                        continue
                    with contextlib.suppress(PalError):
                        self._call("epoll_ctl", handle.uri, _watch, fresh, fd, mask)
                if registry is not None:
                    registry.remove(watch._fd)
                self._call("dup2", watch.uri, os.dup2, fresh.fileno(), watch._fd, False)
                if registry is not None:
                    registry.add(watch._fd)
            finally:
                with contextlib.suppress(PalError):
                    self._call("close", watch.uri, fresh.close)

    def descriptor_number(self, handle: Handle) -> int:
        """The number of the host descriptor behind ``handle``, for the LibOS to show a
        program the object it stands for (an epoll's ``fileno()``).  Knowing the number
        gives no way to act on the descriptor: that stays with the PAL."""
        self._check(handle)
        return handle._fd
