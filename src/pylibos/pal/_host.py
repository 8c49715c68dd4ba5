"""The PAL host: streams by URI, waiting on handles, threads, and the count of host calls.

``Host`` puts together the mechanisms both host kinds share, one module each: the
ledger and its gate (``_ledger``), descriptor identity (``_identity``), pipes
(``_pipes``), eventfds (``_eventfd``), waiting (``_wait``), edge watches (``_edges``)
and threads (``_clone``), over the state they share (``_core``).  ``DirectHost``
(``_direct.py``) adds nothing; ``SgxHost`` (``_sgx.py``) overrides the hooks where
Gramine's Linux-SGX PAL differs: pipe ends are secured with TLS-PSK (``_tls_pipes``),
session keys come from the master key, and thread creation is bounded by
``sgx.max_threads`` (``_slots``).  Host calls are counted as ``_ledger`` says.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time
from _thread import get_ident as _get_ident
from typing import Self

from . import _identity, _interrupts
from ._clone import Threads
from ._core import SHUT_DOWN, _getpid
from ._edges import Edges
from ._errors import PalError, PalErrorCode, ShutDownError
from ._eventfd import EVENT_TOKEN, Eventfds
from ._handle import KIND_EVENTFD, Handle, HandleKind
from ._identity import EventfdRegistry
from ._interrupts import marks_sections, owed
from ._pipes import Pipes
from ._wait import Waiting

_HELPER_JOIN_S = 5.0


class ShutsDown:
    """A context manager that shuts its object down on exit (``Host``, ``LibOS``)."""

    def shutdown(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class Host(Pipes, Eventfds, Waiting, Edges, Threads, ShutsDown):
    """One untrusted host, as the LibOS sees it through the PAL."""

    # -- streams ---------------------------------------------------------------------

    def stream_open(self, uri: str, *, nonblocking: bool = False) -> Handle:
        """Open ``pipe.srv:NAME``, ``pipe:NAME``, ``pipe.raw.srv:NAME``, ``pipe.raw:NAME`` or
        ``eventfd:``."""
        if self.closed:
            raise ShutDownError(SHUT_DOWN)
        if uri == "eventfd:":  # the one a thread start of sgx/eventfd opens
            return self._open_eventfd(uri, nonblocking)
        if not isinstance(uri, str) or ":" not in uri:
            raise PalError(PalErrorCode.INVAL, f"malformed URI (want PREFIX:NAME): {uri!r}")
        prefix, _, name = uri.partition(":")
        if prefix == "eventfd":
            if name:
                raise PalError(PalErrorCode.INVAL, f"eventfd: takes no name, got {name!r}")
            return self._open_eventfd(uri, nonblocking)
        if prefix in ("pipe.srv", "pipe.raw.srv"):
            return self._open_listener(uri, name, prefix == "pipe.raw.srv", nonblocking)
        if prefix in ("pipe", "pipe.raw"):
            return self._open_connecting(uri, name, prefix == "pipe.raw", nonblocking)
        raise PalError(
            PalErrorCode.NOTSUPPORT,
            f"unknown URI prefix {prefix!r}; "
            "known: pipe.srv, pipe, pipe.raw.srv, pipe.raw, eventfd",
        )

    def stream_from_fd(self, fd: int) -> Handle:
        """A handle over a descriptor the program owns, so it can be waited on beside PAL
        streams.  Closing the handle leaves the descriptor open."""
        try:
            mode = self._aside("fstat", f"fd {fd}", os.fstat, fd).st_mode
        except OverflowError:
            raise PalError(PalErrorCode.BADHANDLE, f"fd {fd}: no such descriptor") from None
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            raise PalError(
                PalErrorCode.NOTSUPPORT,
                f"fd {fd} is a file or directory, always ready: not pollable",
            )
        if stat.S_ISCHR(mode) and not self._epoll_can_watch(fd):
            raise PalError(
                PalErrorCode.NOTSUPPORT,
                f"fd {fd} is a device that cannot be polled (as /dev/null): not pollable",
            )
        return self._track(
            Handle(HandleKind.FD, f"fd:{fd}", raw=True, nonblocking=True, fd=fd, owns_fd=False)
        )

    # -- I/O -------------------------------------------------------------------------

    def read(self, handle: Handle, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of stream."""
        self._check(handle, HandleKind.PIPE, HandleKind.EVENTFD)
        if size <= 0:
            raise PalError(PalErrorCode.INVAL, f"read size must be positive, got {size}")
        if handle.kind is HandleKind.EVENTFD:
            return self._read_eventfd(handle, size)  # one system call: nothing to guard
        with handle._read_lock:
            return self._pipe_read(handle, size)

    def write(self, handle: Handle, data: bytes | bytearray | memoryview) -> int:
        """Write ``data``; returns how many bytes were taken, which may be fewer on a
        nonblocking handle: the peer gets every byte counted, with no further call.  After
        a short count (or TRYAGAIN) on a TLS handle, the next write must start with the
        bytes not taken, as mbed TLS asks after WANT_WRITE.  Raw pipes and eventfds take
        only ``EVENT_TOKEN``."""
        self._check(handle, HandleKind.PIPE, HandleKind.EVENTFD)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PalError(PalErrorCode.INVAL, f"write wants bytes, got {type(data).__name__}")
        if handle.raw and bytes(data) != EVENT_TOKEN:
            raise PalError(
                PalErrorCode.DENIED,
                f"{handle.uri} carries no data: only the event token may be written "
                f"(got {len(data)} bytes)",
            )
        if handle.kind is HandleKind.EVENTFD:
            return self._write_eventfd(handle)  # one system call: nothing to guard
        with handle._write_lock:
            return self._pipe_write(handle, data)

    # -- teardown --------------------------------------------------------------------

    def delete(self, handle: Handle) -> None:
        """Shut a connected pipe down both ways (``PalStreamDelete``); the peer sees end of
        stream (after a TLS close_notify, on an encrypted pipe)."""
        self._check(handle, HandleKind.PIPE, failed_ok=True)
        assert handle._sock is not None
        self._pipe_deleting(handle)
        handle._deleted = True
        try:
            self._call("shutdown", handle.uri, handle._sock.shutdown, socket.SHUT_RDWR)
        except PalError as exc:
            if exc.code is not PalErrorCode.NOTCONNECTION:
                raise

    @marks_sections
    def close(self, handle: Handle) -> None:
        """Release a handle.  Closing a closed handle does nothing.

        An encrypted pipe end tells its peer with a TLS close_notify, so the peer can tell
        a close from a host that cut the stream.
        """
        # From taking the handle from the host to closing its descriptor, a Ctrl-C waits:
        # in between, the handle is neither open nor known to the host, and its
        # descriptor would be lost.  The handle is this close's once set.remove takes it
        # (one step: a racing close or shutdown finds it gone, and leaves it).  Only a
        # handle goes to set.remove, whose ``__eq__`` is identity: another object's
        # ``__eq__`` could say it is any handle.
        if handle.__class__ is not Handle:
            raise PalError(PalErrorCode.BADHANDLE, f"not a PAL handle: {handle!r}")
        _pal_critical = True
        closes = self._closes
        try:
            # Counted before the take: a shutdown that does not find the handle leaves
            # the registry this close checks against open until the close is done.
            closes.append(None)
            try:
                self._handles.remove(handle)
            except KeyError:
                if handle._owner is not self and not handle.closed:
                    raise PalError(
                        PalErrorCode.BADHANDLE, f"{handle!r} is open on another host"
                    ) from None
                return  # closed already
            handle.closed = True
            if handle in self._io:
                # A read or write of this eventfd is under way: the last one releases it.
                self._release_after_io(handle)
                return
            ident = handle._ident
            if (
                ident.__class__ is EventfdRegistry
                and handle.kind is KIND_EVENTFD
                and not handle._stale
                and ident._pid == _getpid()
                and ident.release_here(handle)
            ):
                # ``_release``'s common case, for the eventfd every thread start of
                # sgx/eventfd closes: still ours (kcmp), forgotten, closed; in the process
                # the registry was made in (in a fork, ``_release``: the registry's epoll
                # is the parent's too).
                try:  # noqa: SIM105 (as in _release)
                    self._call("close", handle.uri, os.close, handle._fd)
                except PalError:
                    pass
            else:
                self._release(handle, _HELPER_JOIN_S)
        finally:
            closes.pop()
            if self.closed and not closes:
                self._retire_registry()
            _pal_critical = False
            if owed[0]:
                _interrupts.deliver()

    def _release(self, handle: Handle, helper_wait: float) -> None:
        """Free what a handle just marked closed holds."""
        kind = handle.kind
        if kind is HandleKind.PIPE:
            self._pipe_closing(handle, helper_wait)
        if not handle._owns_fd:
            return
        if not _identity.still_ours(handle):
            # The number is no longer ours: forget it, never close it.
            _identity.let_go(handle)
            return
        if not self._in_a_fork():
            _identity.forget(handle)  # the registry's epoll is the parent's too, in a fork
        # The host may close it between the check and here: nothing of ours is left then.
        self._close_fd(handle)

    def _release_after_io(self, handle: Handle) -> None:
        """Leave a handle just marked closed, on which a read or write is under way, to
        be released by the last of them (``_io_done``): its descriptor stays ours until
        then, and no number the program gets next is read or written.  The release to
        come is counted as a close under way (the registry stays open for it)."""
        if self._in_a_fork():
            self._own_io()  # for a fork no hook saw: the parent's I/O never ends here
            if handle not in self._io:
                self._release(handle, 0.0)
                return
        entered = _interrupts.enter()  # (shutdown's call is in no section of its own)
        try:
            self._closes.append(None)
            handle._io_token = [None]
            self._io_done(handle)  # the I/O may have ended already
        finally:
            _interrupts.leave(entered)

    def _io_done(self, handle: Handle) -> None:
        """After a read or write of a closed handle, and after a close left it to them:
        release it, once, if no read or write is under way any more."""
        token = handle._io_token
        if token is None or handle in self._io:
            return
        try:
            token.pop()  # one step: of the parties that get here, one takes it
        except IndexError:
            return
        try:
            self._release(handle, 0.0)
        finally:
            closes = self._closes
            closes.pop()
            if self.closed and not closes:
                self._retire_registry()

    def open_handles(self) -> list[Handle]:
        return list(self._handles)  # one step: list(set)

    @marks_sections
    def _take_handles(self) -> None:
        """Take every handle from the host into ``_taken`` and mark it closed, one
        ``set.pop`` each: a close racing with this takes a handle or finds it taken,
        never both.  A Ctrl-C owed from here leaves them in ``_taken``."""
        taken = self._taken
        _pal_critical = True
        try:
            while True:
                try:
                    handle = self._handles.pop()
                except KeyError:
                    return
                handle.closed = True
                taken.append(handle)
        finally:
            _pal_critical = False
            if owed[0]:
                _interrupts.deliver()

    @marks_sections
    def _release_taken(self, handle: Handle) -> None:
        """Take ``handle`` out of ``_taken`` and release it, in one section: a Ctrl-C
        leaves it either still there or released (what may block, a pipe's helper, was
        waited for before)."""
        _pal_critical = True
        try:
            try:
                self._taken.remove(handle)  # (identity: Handle keeps object's __eq__)
            except ValueError:
                return  # a racing shutdown released it
            if handle in self._io:
                self._release_after_io(handle)
            else:
                self._release(handle, 0.0)
        finally:
            _pal_critical = False
            if owed[0]:
                _interrupts.deliver()

    @marks_sections
    def _retire_eventfds(self) -> None:
        """Swap the eventfd registry out for False and keep it in ``_retired``, in one
        section: a Ctrl-C can neither leave the lock held (between the ``with`` body's end
        and the lock's ``__exit__``) nor lose the registry.  The lock is held only for a
        registry's making, a few system calls."""
        _pal_critical = True
        try:
            with self._lock:
                registry, self._eventfds = self._eventfds, False
            if isinstance(registry, EventfdRegistry):
                self._retired = registry
        finally:
            _pal_critical = False
            if owed[0]:
                _interrupts.deliver()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Close every handle still open and wait for the host's threads, all within
        ``timeout`` seconds overall.

        Threads of the LibOS may be asleep in ``streams_wait_events`` on these handles.
        Closing a descriptor does not wake a ``poll()`` already sleeping on it (the kernel
        keeps the file alive for the poller), so every handle is first made ready: a
        socket is shut down both ways (readable, hung up) and an eventfd gets a count.  A
        woken waiter finds its handle closed and fails with ``BADHANDLE``.  Threads still
        running when the time is up are left running (no thread can be killed); they hold
        no handle of this host any more.

        A shutdown cut short by a Ctrl-C is finished by the next one: the handles taken
        and not yet released wait in ``_taken``, the registry in ``_retired``.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        self.closed = True
        self._wake_slot_waiters()  # a start waiting for a thread slot fails at once
        if self._sigint:
            self._sigint = False
            _interrupts.uninstall()
        if self._in_a_fork():  # for a fork no hook saw: the parent's records
            self._own_io()
            self._own_closes()
        # Closed first, woken next: a waiter that wakes (even one that drains the wakeup
        # from an eventfd) finds its handle closed on its next call, and cannot go back
        # to sleep on it.
        self._take_handles()
        taken = self._taken
        for handle in list(taken):
            self._wake(handle)
        while taken:
            try:
                handle = taken[-1]  # still in _taken while it is released
            except IndexError:
                break  # a racing shutdown released the last
            if handle.kind is HandleKind.PIPE and handle not in self._io:
                # What may block, outside the section; done again (harmlessly) if a
                # Ctrl-C comes before the release.
                self._pipe_closing(handle, max(0.0, deadline - time.monotonic()))
            self._release_taken(handle)
        threads = list(self._threads)
        self._retire_eventfds()
        # A close under way that took its handle before this shutdown took the rest
        # still checks its descriptor against the registry: the last close closes it.
        if self._retired is not None and not self._closes:
            self._retire_registry()
        me = _get_ident()
        for thread in threads:
            if thread.ident != me:  # a host thread shutting down cannot end first
                thread.join(max(0.0, deadline - time.monotonic()))

    def _retire_registry(self) -> None:
        """Close the registry shutdown retired, once no close needs it (called by
        shutdown and by the last close under way; closing it twice is once)."""
        registry = self._retired
        if registry is not None:
            registry.close()

    def _wake(self, handle: Handle) -> None:
        """Make ``handle`` ready for any poller, before it is closed under it."""
        if not handle._owns_fd or not _identity.still_ours(handle) or self._in_a_fork():
            return  # a number no longer ours is not touched; nor the parent's, in a fork
        if handle._sock is not None:
            with contextlib.suppress(PalError):
                self._call("shutdown", handle.uri, handle._sock.shutdown, socket.SHUT_RDWR)
        elif handle.kind is HandleKind.EVENTFD:
            self._wake_eventfd(handle)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} instance={self.instance}>"
