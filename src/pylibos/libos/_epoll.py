"""epoll in the LibOS, with ``select.epoll``'s API (Gramine's ``libos_epoll.c``).

The interest list lives in the LibOS.  A waiter hands the host one ``streams_wait_events`` call
over the PAL handles of the registered descriptors plus its own thread's pollable event.
``register``, ``modify``, ``unregister`` and ``close`` from another thread set the events
of the current waiters, which wake, rebuild their handle list and wait again.  An
``Epoll`` needs only the PAL host and a way to find the calling thread's event; the
interest list and the wait are ``EpollInstance`` (``_interest.py``), shared by every
object over one epoll.

Readiness of a descriptor is what the host reports for it: the descriptors are the
program's own, and the host kernel is where they live.  Wakeups through a waiter's event
carry no readiness at all: a waiter woken by one (a real interest-list change, or a wakeup
the host forged) re-reads the interest list and goes back to sleep, so it never returns an
event that is not there, and never returns early with nothing before its timeout.

``EPOLLET``: Linux queues an entry whenever its file is woken and then reports everything
ready (``EPOLLIN | EPOLLOUT`` after data arrives on a writable socket; again when more
data arrives unread).  Gramine sees edges in the reads and writes that pass through it;
here the program does its own, so only the host kernel sees them.  Each epoll therefore
has a PAL edge watch (a host epoll, every descriptor in it edge-triggered): an ``EPOLLET``
entry is added to it, a wait includes the watch's handle, and when that wakes one take
brings the queued edges with their full readiness.  Exact, and paid for only where edges
are used: an ``epoll_ctl`` per change of such an entry, an ``epoll_wait`` per wake with
edges queued.  ``EPOLLONESHOT`` disables a reported entry until ``modify``; ``EPOLLERR``
and ``EPOLLHUP`` are always reported.

``fileno()`` is the number of the edge watch's host descriptor, a real close-on-exec epoll
descriptor (the LibOS only shows the number; it never acts on it).  ``fromfd(n)`` gives a
new object sharing the epoll numbered ``n``, as ``select.epoll.fromfd`` wraps a number
without duplicating it: closing either object closes the epoll, and the other, not itself
``closed``, then raises ``OSError(EBADF)``.  Where this differs from Linux (a number that
is no LibOS epoll, a reused number, ``fromfd(-1)``, collection without ``close()``,
nesting) and why: ``docs/epoll.md``.

Errors follow ``epoll_ctl``, which checks the descriptor before the interest list: a
closed descriptor is ``EBADF`` and a regular file ``EPERM`` whether or not it is
registered, and only then come ``EEXIST`` and ``ENOENT``.  Linux drops a descriptor from
every interest list when it is closed; here the entry of a registered descriptor is
dropped when the LibOS finds it closed: ``register``, ``modify`` or ``unregister`` on
it, or a ``poll`` where the host reports an error on it.  (A descriptor closed and its
number reused before then is not told apart from the new one: the entry stays.)
"""

from __future__ import annotations

import math
import operator
import select
import time
from typing import Any, Protocol

from ..pal import Host
from ._epoll_events import EPOLLIN, EPOLLOUT, EPOLLPRI
from ._epoll_table import EpollTable
from ._errno import ebadf
from ._interest import CurrentEvent, EpollInstance, by_number

_DEFAULT_MASK = EPOLLIN | EPOLLPRI | EPOLLOUT
_MAX_EVENTS = 1023  # what select.epoll uses for maxevents=-1 (FD_SETSIZE - 1)


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def _c_int(value: object) -> int:
    """``value`` as Argument Clinic converts a C ``int`` argument."""
    number = operator.index(value)  # type: ignore[arg-type]
    if not -_INT_MAX - 1 <= number <= _INT_MAX:
        raise OverflowError("Python int too large to convert to C int")
    return number


def _fd_of(fd: int | _HasFileno) -> int:
    """A descriptor argument as ``select.epoll`` converts it (before it looks at itself)."""
    if not isinstance(fd, int):
        fileno = getattr(fd, "fileno", None)
        if fileno is None:
            raise TypeError(
                f"argument must be an int, or have a fileno() method, not {type(fd).__name__}"
            )
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    fd = _c_int(fd)
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _mask(eventmask: int) -> int:
    """An event mask as ``select.epoll`` passes it: any integer, cut to 32 bits."""
    return operator.index(eventmask) & 0xFFFF_FFFF


_NS_LIMIT = 1 << 63  # CPython keeps a timeout as a signed 64-bit count of nanoseconds
_INT_MAX = (1 << 31) - 1  # epoll_wait takes a C int of milliseconds


def _deadline(timeout: object) -> float | None:
    """A ``time.monotonic`` deadline for ``timeout``, read as ``select.epoll.poll`` reads it.

    None waits for ever.  Otherwise the seconds become nanoseconds (a float rounded away
    from zero, an integer or an object with ``__index__`` exactly), then milliseconds
    rounded up: a count below zero waits for ever (so ``-0.0001`` is 0 ms and returns at
    once, ``-0.001`` is -1 ms and waits), one past a C int is ``OverflowError``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, float):
        if math.isnan(timeout):
            raise ValueError("Invalid value NaN (not a number)")
        scaled = timeout * 1e9
        if not -_NS_LIMIT <= scaled < _NS_LIMIT:  # infinities too
            raise OverflowError("timestamp out of range for platform time_t")
        ns = math.ceil(scaled) if scaled >= 0 else math.floor(scaled)
    else:
        try:
            seconds = operator.index(timeout)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("timeout must be an integer or None") from None
        ns = seconds * 1_000_000_000
        if not -_NS_LIMIT <= ns < _NS_LIMIT:
            raise OverflowError("timestamp too large to convert to C _PyTime_t")
    ms = -(-ns // 1_000_000)  # rounded up
    if not -_INT_MAX - 1 <= ms <= _INT_MAX:
        raise OverflowError("timeout is too large")
    if ms < 0:
        return None
    return time.monotonic() + ms / 1000


class Epoll:
    """``select.epoll`` over the program's descriptors, waited on through the PAL.

    ``current_event`` gives the calling thread's pollable event; ``table``, if given,
    collects the epoll so the LibOS can close it at shutdown.
    """

    def __init__(
        self,
        host: Host,
        current_event: CurrentEvent,
        sizehint: int = -1,
        flags: int = 0,
        *,
        table: EpollTable | None = None,
    ) -> None:
        # As select.epoll: both converted as C ints, then checked; the epoll is
        # close-on-exec whatever the flags.
        sizehint = _c_int(sizehint)
        flags = _c_int(flags)
        if sizehint != -1 and sizehint <= 0:
            raise ValueError("negative sizehint")
        if flags and flags != select.EPOLL_CLOEXEC:
            raise OSError("invalid flags")
        self._closed = False
        self._inst: EpollInstance | None = EpollInstance(host, current_event, table)
        self._made_it = True
        self._fileno = self._inst.number

    @classmethod
    def fromfd(cls, fd: int) -> Epoll:
        """A new object over the epoll numbered ``fd``, sharing it (no duplicate is made).

        Like ``select.epoll.fromfd`` this does not check ``fd``: using the object fails
        with ``EBADF`` if ``fd`` is not an open LibOS epoll.  A negative ``fd`` is refused
        (CPython makes a new epoll for -1; there is no LibOS here to make it on).
        """
        fd = operator.index(fd)
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        ep = cls.__new__(cls)
        ep._closed = False
        ep._inst = by_number(fd)
        ep._made_it = False
        ep._fileno = fd
        return ep

    @property
    def closed(self) -> bool:
        # Closed by this object only.  An epoll closed through another object, or by the
        # LibOS's shutdown, leaves it open (as natively, where it would be open until
        # collected): its calls then raise OSError(EBADF), which selectors and asyncio
        # take as a descriptor gone, so a finalizer that runs after the LibOS's shutdown
        # (an event loop never closed) ends quietly.
        return self._closed

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Neither pickled nor copied, as a ``select.epoll`` is not: a copy would share
        # the instance and close it for the program.
        raise TypeError("cannot pickle 'select.epoll' object")

    def fileno(self) -> int:
        self._check_open()
        return self._fileno

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed epoll object")

    def _open(self) -> EpollInstance:
        """The epoll this object stands for, or EBADF if it was closed through another."""
        self._check_open()
        inst = self._inst
        if inst is None or inst.closed:
            if inst is not None and inst.shut_down:
                raise ebadf(f"epoll {self._fileno}: the LibOS has shut down")
            raise ebadf(f"no open LibOS epoll {self._fileno}")
        return inst

    # The arguments are converted first, then the epoll is checked open, as natively.

    def register(self, fd: int | _HasFileno, eventmask: int = _DEFAULT_MASK) -> None:
        number, mask = _fd_of(fd), _mask(eventmask)
        self._open().register(number, mask)

    def modify(self, fd: int | _HasFileno, eventmask: int) -> None:
        number, mask = _fd_of(fd), _mask(eventmask)
        self._open().modify(number, mask)

    def unregister(self, fd: int | _HasFileno) -> None:
        number = _fd_of(fd)
        self._open().unregister(number)

    def poll(self, timeout: object = None, maxevents: int = -1) -> list[tuple[int, int]]:
        """Wait for events; returns ``[(fd, events), ...]`` like ``select.epoll.poll``."""
        maxevents = _c_int(maxevents)
        self._check_open()
        deadline = _deadline(timeout)
        if maxevents == -1:
            maxevents = _MAX_EVENTS
        elif maxevents <= 0:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        return self._open().poll(deadline, maxevents)

    def close(self) -> None:
        """Close the object and its epoll; current waiters wake and return no events."""
        if self._closed:
            return
        self._closed = True
        if self._inst is not None:
            self._inst.close()

    def __enter__(self) -> Epoll:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LibOS epoll {self._fileno} {'closed' if self.closed else 'open'}>"
