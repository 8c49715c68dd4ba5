"""The IPC worker: serves requests from other processes of the same instance.

It waits on its pollable event, its listener (``pipe.srv:NAME``, TLS-protected on sgx)
and every open connection.  Messages are frames: a 12-byte header (code, sequence number,
payload length, all big-endian 32-bit) and the payload.  A reply carries the request's
code with the top bit set, or ``ERROR`` and a message.

Unlike Gramine's worker, which leaves its loop on any wakeup of its event, this one leaves
only when the LibOS has set its stop flag: a wakeup is something a host can forge.

The accepting end's TLS handshake runs on the worker, as in Gramine, under one deadline
for the whole handshake (the host's ``handshake_timeout``): a peer (or a host) that
connects and then says nothing, or dribbles a byte now and then, holds the worker that
long and no longer.  A host can always delay IPC; it cannot make the worker accept a peer
without the key.

The worker survives whatever the host does to its descriptors: a connection that fails
is dropped; a listener that fails (closed or replaced under the PAL, shut down) is opened
again under the same name; a host that keeps the process out of descriptors makes the
worker stop accepting for a while (doubling, capped) instead of retrying at once; any
other host-caused error is counted in ``host_errors``, logged, and followed by a pause.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..pal import WAIT_ERROR, WAIT_HANG_UP, WAIT_READ, WAIT_WRITE, PalError, PalErrorCode
from ._errno import oserror
from ._hosterrors import BACKOFF_MAX, BACKOFF_MIN
from ._worker import Worker

if TYPE_CHECKING:
    from ..pal import Handle, Host
    from ._event import PollableEvent

_HEADER = struct.Struct("!III")
_RELEASE_S = 0.2  # how long a relisten waits for the old listener to let its name go
_RELEASE_PAUSE_S = 0.005
REPLY = 0x8000_0000
ERROR = 0xFFFF_FFFF
ECHO = 1
THREADS = 2
MAX_PAYLOAD = 1 << 20
RECHECK_S = 2.0
"""Longest the worker sleeps without looking again at its descriptors."""

Handler = Callable[[bytes], bytes]


def _frame(code: int, seq: int, payload: bytes) -> bytes:
    return _HEADER.pack(code, seq, len(payload)) + payload


def _write_all(host: Host, handle: Handle, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[host.write(handle, bytes(view)) :]
        except PalError as exc:
            if exc.code is not PalErrorCode.TRYAGAIN:
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PalError(PalErrorCode.TIMEDOUT, "peer does not take the message") from None
            host.streams_wait_events([handle], [WAIT_WRITE], int(remaining * 1e6))


class IpcWorker(Worker):
    def __init__(self, host: Host, event: PollableEvent, name: str) -> None:
        super().__init__(event, "IPC")
        self._host = host
        self.name = name
        self._server: Handle | None = host.stream_open(f"pipe.srv:{name}", nonblocking=True)
        self._conns: dict[Handle, bytearray] = {}
        self.handlers: dict[int, Handler] = {ECHO: lambda payload: payload}
        self.served = 0
        self.rejected = 0
        self.relistened = 0
        # Accepting is paused until then (monotonic), after EMFILE and the like.
        self._accept_after = 0.0
        self._accept_pause = 0.0

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.close()

    def close(self) -> None:
        """Close the listener and every connection: ``run`` does it as it ends, and the
        LibOS when ``run`` never started."""
        for conn in list(self._conns):
            self._drop(conn)
        if self._server is not None:
            self._host.close(self._server)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                self._step()
            except (OSError, PalError) as exc:
                if self._host.closed or self._stopping:
                    return  # the host is gone, or the LibOS is stopping us: no error
                pause = self.host_errors.record(exc)
                with self._lock:
                    if not self._stopping:
                        self._kick.wait(pause)
            else:
                self.host_errors.recovered()

    def _step(self) -> None:
        if self._server is None:
            self._listen_again()
        now = time.monotonic()
        server = self._server
        listening = server is not None and now >= self._accept_after
        conns = list(self._conns)
        event_handle = self._event.read_handle
        handles = [event_handle, *([server] if server is not None and listening else []), *conns]
        timeout = RECHECK_S
        if not listening:
            timeout = min(timeout, max(0.0, self._accept_after - now))
        try:
            ready = self._host.streams_wait_events(
                handles, [WAIT_READ] * len(handles), int(timeout * 1e6)
            )
        except PalError:
            if event_handle is not self._event.read_handle:
                return  # the event's channel was replaced under us: look again
            raise
        if ready[0]:
            if self._event.is_set():
                self._event.clear()
            else:
                self._event.drain_spurious()
            return  # re-check the stop flag before anything else
        if listening:
            flags = ready[1]
            if flags & (WAIT_ERROR | WAIT_HANG_UP):
                self._listener_broken()
            elif flags:
                self._accept()
        for conn, flags in zip(conns, ready[1 + listening :], strict=True):
            if flags:
                self._serve(conn)

    def _listener_broken(self) -> None:
        assert self._server is not None
        self._host.close(self._server)  # a descriptor no longer ours is only forgotten
        self._server = None
        self._listen_again()

    def _listen_again(self) -> None:
        # The listener just closed under us may hold its name a moment longer (the
        # kernel lets the socket go once every poll on it has returned): a name still
        # taken is tried again for up to _RELEASE_S before it counts as a host error.
        deadline = time.monotonic() + _RELEASE_S
        while True:
            try:
                self._server = self._host.stream_open(f"pipe.srv:{self.name}", nonblocking=True)
                break
            except PalError as exc:
                if exc.code is not PalErrorCode.STREAMEXIST or time.monotonic() >= deadline:
                    raise
                time.sleep(_RELEASE_PAUSE_S)
        self.relistened += 1

    def _accept(self) -> None:
        assert self._server is not None
        try:
            conn = self._host.wait_for_client(self._server)
        except PalError as exc:
            if exc.code in (PalErrorCode.TOOMANY, PalErrorCode.NOMEM):
                # The connection stays queued and the listener readable: retrying at
                # once would spin.  Look at the listener again later.
                self._accept_pause = min(max(self._accept_pause * 2, BACKOFF_MIN), BACKOFF_MAX)
                self._accept_after = time.monotonic() + self._accept_pause
                self.host_errors.record(exc)
            elif exc.code is PalErrorCode.BADHANDLE:
                self._listener_broken()
            elif exc.code is not PalErrorCode.TRYAGAIN:
                self.rejected += 1  # a peer without the key, or one that hung up
            return
        self._accept_pause = 0.0
        self._conns[conn] = bytearray()

    def _serve(self, conn: Handle) -> None:
        buf = self._conns[conn]
        try:
            data = self._host.read(conn, 65536)
        except PalError as exc:
            if exc.code is PalErrorCode.TRYAGAIN:
                return
            self.rejected += 1
            self._drop(conn)
            return
        if not data:
            self._drop(conn)
            return
        buf += data
        while len(buf) >= _HEADER.size:
            code, seq, size = _HEADER.unpack_from(buf)
            if size > MAX_PAYLOAD:
                self.rejected += 1
                self._drop(conn)
                return
            if len(buf) < _HEADER.size + size:
                return
            payload = bytes(buf[_HEADER.size : _HEADER.size + size])
            del buf[: _HEADER.size + size]
            reply = self._answer(code, seq, payload)
            try:
                _write_all(self._host, conn, reply, time.monotonic() + 5.0)
            except PalError:
                self._drop(conn)
                return
            self.served += 1

    def _answer(self, code: int, seq: int, payload: bytes) -> bytes:
        handler = self.handlers.get(code)
        if handler is None:
            return _frame(ERROR, seq, f"unknown request code {code}".encode())
        try:
            return _frame(code | REPLY, seq, handler(payload))
        except Exception as exc:
            return _frame(ERROR, seq, f"{type(exc).__name__}: {exc}".encode())

    def _drop(self, conn: Handle) -> None:
        self._conns.pop(conn, None)
        self._host.close(conn)


class IpcError(Exception):
    """The peer answered a request with an error."""


class IpcClient:
    """A connection to another process's IPC worker.

    The handle is nonblocking, so ``request`` keeps its deadline whatever the host does:
    a handshake that never ends, or half a record that never completes, is a timeout.
    """

    def __init__(self, host: Host, name: str) -> None:
        self._host = host
        try:
            self._handle = host.stream_open(f"pipe:{name}", nonblocking=True)
        except PalError as exc:
            raise oserror(exc, f"connect to IPC worker {name!r}") from exc
        self._seq = 0
        self._buf = bytearray()

    def request(self, code: int, payload: bytes = b"", timeout: float = 5.0) -> bytes:
        """Send one request and wait (at most ``timeout`` seconds) for its reply."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        self._seq += 1
        deadline = time.monotonic() + timeout
        try:
            _write_all(self._host, self._handle, _frame(code, self._seq, payload), deadline)
            while True:
                if len(self._buf) >= _HEADER.size:
                    rcode, seq, size = _HEADER.unpack_from(self._buf)
                    if len(self._buf) >= _HEADER.size + size:
                        body = bytes(self._buf[_HEADER.size : _HEADER.size + size])
                        del self._buf[: _HEADER.size + size]
                        if seq != self._seq:
                            continue
                        if rcode == ERROR:
                            raise IpcError(body.decode(errors="replace"))
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no IPC reply within {timeout:g} s")
                ready = self._host.streams_wait_events(
                    [self._handle], [WAIT_READ], int(remaining * 1e6)
                )
                if not ready[0]:
                    continue
                try:
                    data = self._host.read(self._handle, 65536)
                except PalError as exc:
                    if exc.code is PalErrorCode.TRYAGAIN:
                        continue  # a partial record, or handshake bytes: wait for more
                    raise
                if not data:
                    raise ConnectionResetError("IPC peer closed the connection")
                self._buf += data
        except PalError as exc:
            raise oserror(exc, "IPC request") from exc

    def close(self) -> None:
        self._host.close(self._handle)

    def __enter__(self) -> IpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
