"""Linux epoll's event bits beside the PAL's wait flags, translated both ways, and one
entry of an epoll's interest list (what ``_interest.EpollInstance`` keeps per descriptor).
"""

from __future__ import annotations

import itertools
import select

from ..pal import WAIT_ERROR, WAIT_HANG_UP, WAIT_PRI, WAIT_RDHUP, WAIT_READ, WAIT_WRITE, Handle

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
EPOLLEXCLUSIVE = select.EPOLLEXCLUSIVE
EPOLLWAKEUP = 1 << 29  # <sys/epoll.h>; the select module does not name it

# What Linux lets EPOLLEXCLUSIVE be combined with (fs/eventpoll.c: EPOLLINOUT_BITS, which
# is EPOLLIN | EPOLLOUT, with EPOLLERR, EPOLLHUP, EPOLLWAKEUP, EPOLLET, EPOLLEXCLUSIVE).
EXCLUSIVE_OK = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE

_READS = EPOLLIN | EPOLLRDNORM
_WRITES = EPOLLOUT | EPOLLWRNORM


def wait_flags(mask: int) -> int:
    """The PAL wait flags an epoll event mask asks for."""
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


def epoll_events(flags: int, mask: int) -> int:
    """The epoll events the PAL wait flags ``flags`` give an entry asking for ``mask``."""
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


# Turns on the ready list: a ``next`` is one C call, whole under the GIL.
_turns = itertools.count()


class Entry:
    """A descriptor in an epoll's interest list: its mask and the PAL handle over it.

    ``turn`` orders ready entries when a ``poll`` cannot report them all, as Linux's
    ready list does: registration order at first, and an entry reported goes after every
    other (a larger turn) for the next ``poll``."""

    __slots__ = ("disabled", "fd", "handle", "mask", "turn")

    def __init__(self, fd: int, mask: int, handle: Handle) -> None:
        self.fd = fd
        self.mask = mask
        self.handle = handle
        self.disabled = False
        self.turn = next(_turns)

    @property
    def edge(self) -> bool:
        return bool(self.mask & EPOLLET)

    def report(self, got: int) -> int:
        """The epoll events to report for the wait flags ``got`` (0: none); a one-shot
        entry is disabled by reporting.  Called under the instance's lock."""
        events = epoll_events(got, self.mask)
        if events:
            self.turn = next(_turns)
            if self.mask & EPOLLONESHOT:
                self.disabled = True
        return events
