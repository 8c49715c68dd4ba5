"""Helpers the PAL tests share: an independent TLS peer, an independent HKDF, and bounded
waiting on background work.

Everything here is written without pylibos' own TLS code, so a test that passes through it
checks the PAL against an outside implementation rather than against itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from mbedtls import tls
from mbedtls.exceptions import TLSError

from pylibos import pal

KINDS = ("direct", "sgx")
WAIT_S = 5.0
"""Bound on every wait in the PAL tests; far beyond what any step needs."""

CIPHERSUITE = "TLS-PSK-WITH-AES-128-GCM-SHA256"
_HANDSHAKE_OVER = cast(tls.HandshakeStep, tls.HandshakeStep.HANDSHAKE_OVER)
_CHUNK = 8192
RECORD_OVERHEAD = 5 + 8 + 16
"""Header, explicit GCM nonce and tag: what a TLS 1.2 AES-GCM record adds to its plaintext."""

T = TypeVar("T")


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def abstract_name(host: pal.Host, name: str, *, raw: bool = False) -> bytes:
    """The abstract socket address a host's pipe ``name`` lives at, spelled out here rather
    than asked of the host, so a change of the naming scheme shows up in the tests."""
    return b"\0pylibos/" + host.instance.encode() + (b"/r/" if raw else b"/p/") + name.encode()


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """RFC 5869 HKDF with HMAC-SHA256, from the standard library only."""
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def read_exact(host: pal.Host, handle: pal.Handle, size: int) -> bytes:
    """Read until ``size`` bytes have come; fails on an early end of stream."""
    out = bytearray()
    while len(out) < size:
        chunk = host.read(handle, size - len(out))
        assert chunk, f"end of stream after {len(out)} of {size} bytes"
        out += chunk
    return bytes(out)


def settle(*handles: pal.Handle) -> None:
    """Wait until the handshake guarding each handle has ended.

    A connecting sgx end handshakes on a helper thread and says so to no public call; a
    nonblocking read on it answers TRYAGAIN until then.  Tests that must tell "no data"
    from "handshake still running" wait here first (a no-op for unencrypted handles).
    """
    for handle in handles:
        if handle._ready is not None:
            assert handle._ready.wait(WAIT_S), f"{handle} still handshaking after {WAIT_S} s"


class Background(Generic[T]):
    """Runs ``fn`` on a plain thread; ``result`` joins it (bounded) and returns or re-raises."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float = WAIT_S) -> T:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"background work still running after {timeout} s"
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


def mbedtls_configuration(
    psk: bytes, *, server: bool, identity: str = "dummy"
) -> tls.TLSConfiguration:
    """TLS 1.2, the one PSK suite, the key given: as Gramine configures its pipe ends."""
    return tls.TLSConfiguration(
        ciphers=(CIPHERSUITE,),
        lowest_supported_version=tls.TLSVersion.TLSv1_2,
        highest_supported_version=tls.TLSVersion.TLSv1_2,
        validate_certificates=False,
        pre_shared_key=None if server else (identity, psk),
        pre_shared_key_store={identity: psk} if server else {},
    )


class OutsideTls:
    """A TLS-PSK endpoint made straight from python-mbedtls over a socket the test owns.

    It plays the host and the far end at once: ``wire`` keeps every byte it received as it
    came off the socket, and ``seal`` hands out records to send untouched or forged.
    """

    def __init__(self, sock: socket.socket, psk: bytes, *, server: bool) -> None:
        self.sock = sock
        config = mbedtls_configuration(psk, server=server)
        self.buf = (
            tls.ServerContext(config).wrap_buffers()
            if server
            else tls.ClientContext(config).wrap_buffers(None)
        )
        self.wire = bytearray()

    def handshake(self) -> None:
        """Run the handshake; on failure, send the alert mbed TLS queued, as a real peer
        does, then raise."""
        while self.buf._handshake_state is not _HANDSHAKE_OVER:
            try:
                self.buf.do_handshake()
            except tls.WantReadError:
                self._flush()
                self._receive()
                continue
            except tls.WantWriteError:
                pass
            except TLSError:
                with contextlib.suppress(OSError):
                    self._flush()
                raise
            self._flush()
        self._flush()

    def _flush(self) -> None:
        out = self._take()
        if out:
            self.sock.sendall(out)

    def _take(self) -> bytes:
        out = self.buf.peek_outgoing(1 << 20)
        if out:
            self.buf.consume_outgoing(len(out))
        return bytes(out)

    def _receive(self) -> None:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise EOFError("the PAL end closed the connection")
        self.wire += data
        self.buf.receive_from_network(data)

    def seal(self, data: bytes) -> bytes:
        """One record carrying ``data`` (at most 16 KiB), not sent."""
        self.buf.write(data)
        return self._take()

    def send(self, data: bytes) -> None:
        for start in range(0, len(data), 16384):
            self.sock.sendall(self.seal(data[start : start + 16384]))

    def recv_exact(self, size: int) -> bytes:
        # readinto(), one mbedtls_ssl_read() per call: the buffer's read() returns b"" on
        # an empty ring and drops plaintext when a partial record follows a whole one.
        out = bytearray()
        chunk = bytearray(16384)
        while len(out) < size:
            try:
                n = self.buf.readinto(chunk, min(len(chunk), size - len(out)))  # type: ignore[arg-type]
            except tls.WantReadError:
                self._receive()
                continue
            out += chunk[:n]
        return bytes(out)

    def close(self) -> None:
        self.sock.close()


def records(wire: bytes) -> list[tuple[int, int, int]]:
    """Split a byte stream into TLS records: (content type, version, body length) each.
    Fails unless the stream is whole records and nothing else."""
    out, i = [], 0
    while i < len(wire):
        assert len(wire) - i >= 5, f"stream ends inside a record header at {i}"
        length = int.from_bytes(wire[i + 3 : i + 5], "big")
        assert len(wire) - i - 5 >= length, f"stream ends inside a record body at {i}"
        out.append((wire[i], int.from_bytes(wire[i + 1 : i + 3], "big"), length))
        i += 5 + length
    return out


def unix_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
