"""Host eventfds, as Gramine's ``pal_eventfd.c``: a counter that only wakes.

An eventfd carries no payload: a write adds one, a read takes the whole count and
returns that many ``EVENT_TOKEN`` bytes (at most the size asked for).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

from . import _interrupts
from ._core import HostCore
from ._errors import PalError, PalErrorCode
from ._handle import KIND_EVENTFD, Handle
from ._interrupts import marks_sections, owed

T = TypeVar("T")

EVENT_TOKEN = b"\x01"
"""The only payload raw pipes and eventfds carry: one wakeup."""

_BLOCK = os.EFD_CLOEXEC
_NONBLOCK = os.EFD_CLOEXEC | os.EFD_NONBLOCK
_new_handle = object.__new__


class Eventfds(HostCore):
    """Open, signal, drain and wake eventfds."""

    @marks_sections
    def _open_eventfd(self, uri: str, nonblocking: bool) -> Handle:
        # From the eventfd's making to its handle's record, a Ctrl-C waits: in between,
        # the descriptor is nobody's, and would be lost for good.
        _pal_critical = True
        try:
            registry = self._eventfds
            if registry is None:
                registry = self._eventfd_registry()
            fd = self._call("eventfd", uri, os.eventfd, 0, _NONBLOCK if nonblocking else _BLOCK)
            # ``Handle(HandleKind.EVENTFD, uri, raw=True, nonblocking=..., fd=fd)``, built
            # in place (no frame, no keywords: an eventfd is made on every thread start
            # of sgx/eventfd); what it does not store is its class's default.
            handle = _new_handle(Handle)
            handle.kind = KIND_EVENTFD
            handle.uri = uri
            handle.raw = True
            handle.nonblocking = nonblocking
            handle._fd = fd
            if not registry:
                return self._track(handle)  # kcmp is not to be had: by inode
            # ``_track``, for an eventfd where kcmp is to be had.
            handle._ident = registry
            handle._owner = self
            try:
                registry.add(fd, handle)
            except PalError as exc:
                self._registered_again(handle, registry, exc)
            self._handles.add(handle)
            if self.closed:  # shutdown ran since the test in stream_open: see _track
                self._taken_back(handle)
            return handle
        finally:
            _pal_critical = False
            if owed[0]:
                _interrupts.deliver()

    # A read or write is one system call, but between the handle's check and that call
    # a racing close could close the descriptor and the program's next object get its
    # number.  So each is recorded in ``_io`` while under way, and a close that finds it
    # there leaves the release of the handle to the last of them (``Host.close``).  The
    # record comes before the test of ``closed``, which a close sets before it looks.

    def _read_eventfd(self, handle: Handle, size: int) -> bytes:
        value: int = self._eventfd_io(handle, "read", os.eventfd_read)
        return EVENT_TOKEN * min(value, size)

    def _write_eventfd(self, handle: Handle) -> int:
        self._eventfd_io(handle, "write", os.eventfd_write, 1)
        return len(EVENT_TOKEN)

    @marks_sections
    def _eventfd_io(self, handle: Handle, kind: str, op: Callable[..., T], *args: Any) -> T:
        """``op(fd, *args)``, the host call ``kind``, recorded in ``_io`` while under way."""
        io = self._io
        _pal_critical = True  # (the record and the try's start: one step for a Ctrl-C)
        try:
            io.append(handle)
            try:  # (its start, a step no handler covers, while still in the section)
                _pal_critical = False
                if owed[0]:
                    _interrupts.deliver()
                if handle.closed:
                    raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")
                result = self._call(kind, handle.uri, op, handle._fd, *args)
            except BaseException:
                # The way out by exception (a failed call, the closed handle, a Ctrl-C)
                # enters the section here, so the finally is never reached outside it.
                _pal_critical = True
                raise
            # From leaving ``_io`` to releasing the handle, a Ctrl-C waits (here first,
            # so no step lies between the end of the system call and the section).
            _pal_critical = True
        finally:
            _pal_critical = True
            io.remove(handle)
            if handle.closed:
                self._io_done(handle)
            _pal_critical = False
            if owed[0]:
                _interrupts.deliver()
        return result

    def _wake_eventfd(self, handle: Handle) -> None:
        """Make an eventfd readable for any poller (never blocking), errors ignored."""
        with contextlib.suppress(OSError, PalError):
            os.set_blocking(handle._fd, False)  # a full counter must not stall us
            self._call("write", handle.uri, os.eventfd_write, handle._fd, 1)
