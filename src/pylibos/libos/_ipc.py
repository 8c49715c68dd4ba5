"""The IPC worker: serves requests from other processes of the same instance.

It waits on its pollable event, its listener (``pipe.srv:NAME``, TLS-protected on sgx)
and every open connection.  Messages are frames: a 12-byte header (code, sequence number,
payload length, all big-endian 32-bit) and the payload.  A reply carries the request's
code with the top bit set, or ``ERROR`` and a message.

Unlike Gramine's worker, which leaves its loop on any wakeup of its event, this one leaves
only when the LibOS has set its stop flag: a wakeup is something a host can forge.

The accepting end's TLS handshake runs on the worker, as in Gramine, bounded by the host's
``handshake_timeout``: a peer (or a host) that connects and then says nothing holds the
worker that long.  A host can always delay IPC; it cannot make the worker accept a peer
without the key.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..pal import WAIT_READ, WAIT_WRITE, Handle, Host, PalError, PalErrorCode
from ._errno import oserror

if TYPE_CHECKING:
    from ..pal import PalThread
    from ._event import PollableEvent

_HEADER = struct.Struct("!III")
REPLY = 0x8000_0000
ERROR = 0xFFFF_FFFF
ECHO = 1
THREADS = 2
MAX_PAYLOAD = 1 << 20

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


class IpcWorker:
    def __init__(self, host: Host, event: PollableEvent, name: str) -> None:
        self._host = host
        self._event = event
        self.name = name
        self._server = host.stream_open(f"pipe.srv:{name}", nonblocking=True)
        self._conns: dict[Handle, bytearray] = {}
        self.handlers: dict[int, Handler] = {ECHO: lambda payload: payload}
        self._lock = threading.Lock()
        self._stopping = False  # Guarded by _lock.
        self.served = 0
        self.rejected = 0
        self.thread: PalThread | None = None

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
        self._host.close(self._server)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            conns = list(self._conns)
            handles = [self._event.read_handle, self._server, *conns]
            ready = self._host.streams_wait_events(handles, [WAIT_READ] * len(handles), None)
            if ready[0]:
                if self._event.is_set():
                    self._event.clear()
                else:
                    self._event.drain_spurious()
                continue  # re-check the stop flag before anything else
            if ready[1]:
                self._accept()
            for conn, flags in zip(conns, ready[2:], strict=True):
                if flags:
                    self._serve(conn)

    def _accept(self) -> None:
        try:
            conn = self._host.wait_for_client(self._server)
        except PalError as exc:
            if exc.code is not PalErrorCode.TRYAGAIN:
                self.rejected += 1  # a peer without the key, or one that hung up
            return
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

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._event.set()


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
            raise oserror(exc, f"connect to IPC worker {name!r}") from None
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
            raise oserror(exc, "IPC request") from None

    def close(self) -> None:
        self._host.close(self._handle)

    def __enter__(self) -> IpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
