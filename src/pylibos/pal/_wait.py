"""Waiting for events on handles (``PalStreamsWaitEvents``): one ``poll`` per wait."""

from __future__ import annotations

import select
import time
from collections.abc import Sequence

from . import _identity
from ._core import HostCore
from ._errors import PalError, PalErrorCode
from ._handle import Handle

WAIT_READ = 1
WAIT_WRITE = 2
WAIT_ERROR = 4
WAIT_HANG_UP = 8
# Beyond Gramine's four, so epoll over a program's own descriptors keeps Linux's meaning:
WAIT_PRI = 16  # urgent data (POLLPRI)
WAIT_RDHUP = 32  # the peer shut down its writing side (POLLRDHUP)

# WAIT_* flag, the poll bits it asks for, the poll bits that report it.
_POLL_BITS = (
    (WAIT_READ, select.POLLIN),
    (WAIT_WRITE, select.POLLOUT),
    (WAIT_PRI, select.POLLPRI),
    (WAIT_RDHUP, select.POLLRDHUP),
)


def _registers(epoll: select.epoll, fd: int) -> bool:
    """Whether ``epoll`` takes ``fd`` (False: EPERM, a file with no poll operation)."""
    try:
        epoll.register(fd, 0)
    except PermissionError:
        return False
    return True


class Waiting(HostCore):
    """``streams_wait_events``, and the two hooks a host with secured pipes overrides."""

    def _epoll_can_watch(self, fd: int) -> bool:
        """Whether Linux's epoll can watch the file at ``fd``: it refuses one with no poll
        operation (``/dev/null``, ``/dev/zero``) with EPERM, where ``poll`` calls it always
        ready.  Asked of a probe epoll made for the question (a program's descriptor,
        taken by ``stream_from_fd``: not on any hot path)."""
        where = f"fd {fd}"
        probe = self._aside("epoll_create1", where, _identity.HOST_EPOLL)
        try:
            if probe.fileno() == fd:  # closed since it was looked at: the probe has it
                raise PalError(PalErrorCode.BADHANDLE, f"{where}: closed")
            return bool(self._aside("epoll_ctl", where, _registers, probe, fd))
        finally:
            self._aside("close", where, probe.close)

    def streams_wait_events(
        self, handles: Sequence[Handle], events: Sequence[int], timeout_us: int | None
    ) -> list[int]:
        """Wait until one of ``handles`` is ready for its ``events`` (WAIT_* flags).

        Returns the ready flags per handle, all zero on timeout.  ``timeout_us`` None waits
        without bound.  A TLS handle holding decrypted bytes is readable at once, without
        asking the host; one whose session has failed (bad record, failed handshake) is
        reported with ``WAIT_ERROR``, so a waiter over many handles learns which one broke.
        A connecting end whose handshake is still running is waited for first (within the
        timeout): until it ends, the end has no readiness of its own.
        """
        if len(handles) != len(events):
            raise PalError(PalErrorCode.INVAL, "handles and events differ in length")
        if timeout_us is not None and timeout_us < 0:
            raise PalError(PalErrorCode.INVAL, f"timeout_us must be >= 0, got {timeout_us}")
        ready = [0] * len(handles)
        deadline = None if timeout_us is None else time.monotonic() + timeout_us / 1e6
        for h in handles:
            if isinstance(h, Handle) and not self._settle(h, deadline):
                return ready
        if deadline is not None:
            timeout_us = max(0, int((deadline - time.monotonic()) * 1e6))
        local = False
        for i, (h, ev) in enumerate(zip(handles, events, strict=True)):
            # One check per handle (it verifies the descriptor's identity): with two, the
            # host could close the descriptor between them and make the second raise.
            try:
                self._check(h)
            except PalError:
                if not (isinstance(h, Handle) and h._failure is not None and not h.closed):
                    raise  # not a handle, or closed by the PAL's user: the caller's error
                # A broken handle (a failed TLS session, a descriptor the host closed or
                # replaced) is an error to report, not raise, and is never polled.  One
                # the host closes after this check polls as POLLNVAL: an error too.
                ready[i] = WAIT_ERROR
                local = True
                continue
            if ev & WAIT_READ and self._buffered(h):
                ready[i] = WAIT_READ
                local = True
        if local:
            return ready
        # One registration per descriptor: poll() keeps only the last mask given for an fd,
        # and the same descriptor may come twice (once for read, once for write).
        masks: dict[int, int] = {}
        for h, ev in zip(handles, events, strict=True):
            mask = 0
            for flag, bit in _POLL_BITS:
                if ev & flag:
                    mask |= bit
            masks[h._fd] = masks.get(h._fd, 0) | mask
        poller = select.poll()
        for fd, mask in masks.items():
            poller.register(fd, mask)
        timeout_ms = None if timeout_us is None else (timeout_us + 999) // 1000
        polled = self._call("poll", "poll", poller.poll, timeout_ms)
        by_fd: dict[int, int] = {}
        for fd, rev in polled:
            by_fd[fd] = by_fd.get(fd, 0) | rev
        for i, (h, ev) in enumerate(zip(handles, events, strict=True)):
            rev = by_fd.get(h._fd, 0)
            flags = 0
            for flag, bit in _POLL_BITS:
                if rev & bit and ev & flag:
                    flags |= flag
            if rev & (select.POLLERR | select.POLLNVAL):
                flags |= WAIT_ERROR
            if rev & select.POLLHUP:
                flags |= WAIT_HANG_UP
            ready[i] = flags
        return ready

    def _settle(self, handle: Handle, deadline: float | None) -> bool:
        """Before a wait: make ``handle`` able to report readiness of its own by
        ``deadline`` (monotonic; None: no bound).  False if it could not in time."""
        return True

    def _buffered(self, handle: Handle) -> bool:
        """Whether ``handle`` holds bytes already read from the host, so it is readable
        without asking the host."""
        return False
