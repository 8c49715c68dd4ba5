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
import select

from ._core import HostCore
from ._errors import PalError, PalErrorCode
from ._handle import Handle, HandleKind
from ._identity import HOST_EPOLL
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
        # Known before the kernel can queue it, or a take would drop it as forged.
        previous = watch._watched.get(handle._fd)
        watch._watched[handle._fd] = handle
        try:
            self._call("epoll_ctl", handle.uri, _watch, watch._epoll, handle._fd, mask)
        except (PalError, ValueError) as exc:
            if watch._watched.get(handle._fd) is handle:
                if previous is None:
                    del watch._watched[handle._fd]
                else:
                    watch._watched[handle._fd] = previous
            if isinstance(exc, PalError):
                raise
            # ValueError: the watch was closed by another thread.
            raise PalError(PalErrorCode.BADHANDLE, _WATCH_CLOSED) from None

    def edge_watch_remove(self, watch: Handle, handle: Handle) -> None:
        """Stop watching ``handle``.  A descriptor the program has closed already left
        the watch then (the kernel drops it), so that is no error."""
        self._check(watch, HandleKind.EDGES)
        assert watch._epoll is not None
        if watch._watched.get(handle._fd) is handle:
            del watch._watched[handle._fd]
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
        for fd, mask in got:
            handle = watch._watched.get(fd)
            if handle is None:
                # Not ours: the host put it there.  Left in, it could keep the watch
                # readable for ever and its waiters spinning; so it goes.
                with contextlib.suppress(PalError, ValueError):
                    self._call("epoll_ctl", "epoll_ctl", watch._epoll.unregister, fd)
                continue
            if handle.closed:
                continue
            flags = 0
            for flag, bit in _EPOLL_BITS:
                if mask & bit:
                    flags |= flag
            edges.append((handle, flags))
        return edges

    def descriptor_number(self, handle: Handle) -> int:
        """The number of the host descriptor behind ``handle``, for the LibOS to show a
        program the object it stands for (an epoll's ``fileno()``).  Knowing the number
        gives no way to act on the descriptor: that stays with the PAL."""
        self._check(handle)
        return handle._fd
