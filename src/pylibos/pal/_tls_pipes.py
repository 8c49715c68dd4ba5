"""TLS-PSK pipe ends, as Gramine's Linux-SGX ``pal_pipes.c`` secures them.

The end ``wait_for_client`` returns is the TLS *client* and handshakes before the call
returns; the connecting end is the TLS *server* and handshakes on a helper thread, so
``stream_open("pipe:...")`` returns at once and the first read or write on it waits for
the handshake.  Raw pipes (``pipe.raw``) are never encrypted and take the plain path of
``_pipes``.  The TLS library is the host's (``_tls``); this module speaks only the
session interface.
"""

from __future__ import annotations

import contextlib
import functools
import select
import socket
import threading
import time

from . import _identity
from ._clone import Threads
from ._errors import PalError, PalErrorCode
from ._handle import Handle
from ._pipes import Pipes
from ._tls import TlsFailure, TlsSession
from ._wait import Waiting

_RECV_CHUNK = 8192


class TlsPipes(Pipes, Waiting, Threads):
    """The pipe hooks of a host whose ``pipe:`` ends speak TLS-PSK."""

    _session: type[TlsSession]

    # -- opening: the handshakes ----------------------------------------------------------

    def _secure_connecting(self, handle: Handle, name: str) -> None:
        assert handle._sock is not None
        with self.phase("handshake"):
            handle._tls = self._session(self.session_key(name), server=True)
            handle._ready = threading.Event()
            handle._sock.setblocking(False)  # the handshake waits in _handshake, with a deadline
            deadline = time.monotonic() + self.handshake_timeout
            # The end learns of its helper in the start's own section (``record``): a
            # Ctrl-C at its end leaves a helper the opening's undo can wake and join.
            self.thread_start(
                self._handshake_in_helper,
                (handle, deadline),
                "pal-handshake",
                record=functools.partial(setattr, handle, "_helper"),
                helper=True,
            )

    def _handshake_in_helper(self, handle: Handle, deadline: float) -> None:
        assert handle._ready is not None and handle._sock is not None
        try:
            self._handshake(handle, deadline)
        except PalError as exc:
            handle._failure = exc
        finally:
            # OSError: closed under us, and close() is waiting for this thread.
            with contextlib.suppress(OSError):
                handle._sock.setblocking(not handle.nonblocking)
            handle._ready.set()

    def _secure_accepted(self, handle: Handle, name: str) -> None:
        assert handle._sock is not None
        with self.phase("handshake"):
            handle._tls = self._session(self.session_key(name), server=False)
            handle._ready = threading.Event()
            handle._sock.setblocking(False)
            try:
                self._handshake(handle, time.monotonic() + self.handshake_timeout)
            finally:
                handle._ready.set()

    def _handshake(self, handle: Handle, deadline: float) -> None:
        """Run the handshake by ``deadline`` (monotonic): one deadline for the whole
        handshake, not one per system call, since a peer (or a host) that dribbles a byte
        now and then would otherwise hold it for ever."""
        sock, session, uri = handle._sock, handle._tls, handle.uri
        assert sock is not None
        if session is None:  # closed before the handshake began
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {uri}")

        def wait(events: int) -> None:
            # The wait a socket timeout would make inside CPython, made here through the
            # gate: part of the send or recv that follows.
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            poller = select.poll()
            poller.register(sock.fileno(), events)
            if not self._aside("poll", uri, poller.poll, int(left * 1000) + 1):
                raise TimeoutError

        def send(data: bytes) -> None:
            view = memoryview(data)
            while view:
                wait(select.POLLOUT)
                try:
                    view = view[self._call("send", uri, sock.send, view) :]
                except PalError as exc:
                    if exc.code is not PalErrorCode.TRYAGAIN:
                        raise

        def recv() -> bytes:
            while True:
                wait(select.POLLIN)
                try:
                    return self._call("recv", uri, sock.recv, _RECV_CHUNK)
                except PalError as exc:
                    if exc.code is not PalErrorCode.TRYAGAIN:
                        raise

        try:
            session.handshake(send, recv)
        except TlsFailure as exc:
            raise PalError(PalErrorCode.AUTH_FAILED, f"{uri}: {exc}") from None
        except (TimeoutError, PalError) as exc:
            if isinstance(exc, TimeoutError) or exc.code is PalErrorCode.TIMEDOUT:
                raise PalError(
                    PalErrorCode.TIMEDOUT,
                    f"{uri}: no handshake within {self.handshake_timeout:g} s",
                ) from None
            raise PalError(exc.code, f"{uri}: handshake: {exc.message}") from None

    def _await_handshake(self, handle: Handle) -> None:
        assert handle._ready is not None
        if not handle._ready.is_set():
            if handle.nonblocking:
                raise PalError(PalErrorCode.TRYAGAIN, f"{handle.uri}: handshake in progress")
            if not handle._ready.wait(self.handshake_timeout):
                raise PalError(PalErrorCode.TIMEDOUT, f"{handle.uri}: handshake did not finish")
        if handle._failure is not None:
            raise handle._failure

    # -- records ----------------------------------------------------------------------------

    def _pipe_read(self, handle: Handle, size: int) -> bytes:
        if handle.raw:
            return super()._pipe_read(handle, size)
        self._await_handshake(handle)
        session = handle._tls
        if session is None:
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")
        while True:
            with handle._tls_lock:
                if session.buffered:
                    return session.take(size)
                if session.peer_closed:
                    return b""
            data = self._recv(handle, _RECV_CHUNK)
            with handle._tls_lock:
                if not data:
                    if session.mid_record:
                        raise self._fail(handle, "stream ended inside a TLS record (truncated)")
                    if handle._deleted:
                        return b""  # this end was shut down here: the end is ours
                    # Without close_notify, the host may have dropped whole records and
                    # then closed the connection: a cut stream, not an end.
                    raise self._fail(handle, "stream ended without a TLS close_notify (cut)")
                try:
                    session.feed(data)
                except TlsFailure as exc:
                    raise self._fail(handle, str(exc)) from None

    def _fail(self, handle: Handle, message: str) -> PalError:
        """Mark a TLS handle broken for good: nothing more is read from or written to it."""
        err = PalError(PalErrorCode.AUTH_FAILED, f"{handle.uri}: {message}")
        handle._failure = err
        return err

    def _pipe_write(self, handle: Handle, data: bytes | bytearray | memoryview) -> int:
        if handle.raw:
            return super()._pipe_write(handle, data)
        return self._write_tls(handle, memoryview(bytes(data)))

    def _send_all(self, handle: Handle, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._send(handle, view) :]

    def _flush_out(self, handle: Handle) -> None:
        while handle._out:
            sent = self._send(handle, handle._out)
            del handle._out[:sent]

    def _write_tls(self, handle: Handle, data: memoryview) -> int:
        self._await_handshake(handle)
        session = handle._tls
        if session is None:
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")
        if handle._goodbye:
            # close_notify is out: no record may follow it (OpenSSL will not seal one).
            raise PalError(PalErrorCode.CONNFAILED_PIPE, f"{handle.uri}: this end was shut down")
        taken = 0
        if handle._out_plain:
            # The last write parked a sealed record and did not count it: it goes first, and
            # counts now, provided this write starts with the same bytes.
            if data[: len(handle._out_plain)] != handle._out_plain:
                raise PalError(
                    PalErrorCode.INVAL,
                    f"{handle.uri}: a nonblocking write that took fewer bytes must be retried "
                    "starting with the bytes it did not take",
                )
            self._flush_out(handle)  # TRYAGAIN here means nothing was taken
            taken = len(handle._out_plain)
            handle._out_plain = b""
        while taken < len(data):
            with handle._tls_lock:
                try:
                    n, record = session.seal(data[taken:])
                except TlsFailure as exc:
                    raise self._fail(handle, str(exc)) from None
            if not handle.nonblocking:
                self._send_all(handle, record)
                taken += n
                continue
            # A sealed record must reach the peer whole, and bytes count as written only
            # once their record is all in the socket: a record the socket will not take now
            # waits in _out, uncounted, and goes first on the next write (as mbed TLS's own
            # ``mbedtls_ssl_write`` wants a retry with the same data after WANT_WRITE).
            handle._out += record
            try:
                self._flush_out(handle)
            except PalError as exc:
                if exc.code is not PalErrorCode.TRYAGAIN:
                    raise
                handle._out_plain = bytes(data[taken : taken + n])
                if not taken:
                    raise
                break
            taken += n
        return taken

    # -- the end of an end: close_notify ---------------------------------------------------

    def _pipe_deleting(self, handle: Handle) -> None:
        if handle._ready is not None and not handle.nonblocking:
            # A blocking end lets its handshake end first (its helper keeps the
            # handshake's deadline), so the peer gets a close_notify, not a cut.
            handle._ready.wait(self.handshake_timeout)
        if handle._tls is not None and handle._failure is None:
            self._say_goodbye(handle)

    def _pipe_closing(self, handle: Handle, helper_wait: float) -> None:
        helper = handle._helper
        if self._in_a_fork():
            helper = None  # the parent's thread, which this process does not have
        if helper is not None and handle._sock is not None:
            if handle._ready is not None and not handle._ready.is_set():
                # Wake a handshake still in progress, so its thread ends before the fd goes.
                with contextlib.suppress(PalError):
                    self._call("shutdown", handle.uri, handle._sock.shutdown, socket.SHUT_RDWR)
            helper.join(helper_wait)
            handle._helper = None
        if handle._tls is None:
            return
        if handle._failure is None and _identity.still_ours(handle) and not self._in_a_fork():
            self._say_goodbye(handle)
        # A closed handle keeps nothing of its session: the TLS contexts are large (about
        # 100 KiB with mbed TLS), and a finished thread's event may be kept long after.
        handle._tls = None

    def _say_goodbye(self, handle: Handle) -> None:
        """Best effort, never blocking: send close_notify on an established session.

        Skipped when a writer holds the handle (it is mid-send) or a sealed record is
        parked in ``_out``: its plaintext was never reported written, and a close_notify
        sealed after it would not authenticate without it.  The peer then sees the stream
        end without close_notify, which it reports as a cut stream, as it should.
        """
        assert handle._sock is not None and handle._tls is not None
        ready = handle._ready
        if ready is None or not ready.is_set() or handle._goodbye:
            return
        if not handle._write_lock.acquire(blocking=False):
            return
        try:
            if handle._out:
                return
            handle._goodbye = True
            with handle._tls_lock:
                alert = handle._tls.close_notify()
            if alert:
                with contextlib.suppress(OSError, PalError):
                    handle._sock.setblocking(False)
                    self._call("send", handle.uri, handle._sock.send, alert)
        finally:
            handle._write_lock.release()

    # -- waiting ---------------------------------------------------------------------------

    def _settle(self, handle: Handle, deadline: float | None) -> bool:
        # An end whose handshake is still running on its helper has no readiness to
        # report yet (its socket carries handshake bytes): wait for the handshake.
        ready = handle._ready
        if ready is None or ready.is_set():
            return True
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return ready.wait(remaining)

    def _buffered(self, handle: Handle) -> bool:
        session = handle._tls
        return session is not None and session.buffered > 0
