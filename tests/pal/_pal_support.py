"""Helpers the PAL tests share: independent TLS peers, an independent HKDF, bounded
waiting on background work and on a forked child, and whether a descriptor is open.

Everything here is written without pylibos' own TLS code, so a test that passes through it
checks the PAL against an outside implementation rather than against itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import sys
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar, Generic, TypeVar, cast

import pytest

from libos_support import is_open as is_open
from libos_support import open_fds as open_fds
from pylibos import pal

KINDS = ("direct", "sgx")
TLS_BACKENDS = pal.available_tls_backends()
"""The TLS backends this interpreter has: every TLS test runs on each of them."""
WAIT_S = 5.0
"""Bound on every wait in the PAL tests; far beyond what any step needs."""
CHILD_S = 20.0
"""Bound on the life of a forked child (it starts with a copy of a busy process)."""

CIPHERSUITE = "TLS-PSK-WITH-AES-128-GCM-SHA256"
_CHUNK = 8192
RECORD_OVERHEAD = 5 + 8 + 16
"""Header, explicit GCM nonce and tag: what a TLS 1.2 AES-GCM record adds to its plaintext."""

T = TypeVar("T")


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


def in_a_child(work: Callable[[], int | None], fork: Callable[[], int] = os.fork) -> int:
    """Fork with ``fork``, run ``work()`` in the child and ``os._exit`` with its result (0
    for None, 99 if it raised); the child's exit status, waited for ``CHILD_S`` at most
    (then the child is killed and the test fails)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads are running
        pid = fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            status = work() or 0
        finally:
            os._exit(status)
    assert pid > 0
    deadline = time.monotonic() + CHILD_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"the child did not end within {CHILD_S} s")
        time.sleep(0.01)  # polling a child's exit: there is no wait with a timeout


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


class OutsideTls(ABC):
    """A TLS-PSK endpoint made straight from a TLS library over a socket the test owns.

    It plays the host and the far end at once: ``wire`` keeps every byte it received as it
    came off the socket, and ``seal`` hands out records to send untouched or forged.
    ``errors`` are what a failed handshake raises.
    """

    errors: ClassVar[tuple[type[BaseException], ...]]
    library: ClassVar[str]

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wire = bytearray()

    @abstractmethod
    def handshake(self) -> None:
        """Run the handshake; on failure, send the alert the library queued, as a real
        peer does, then raise one of ``errors``."""

    @abstractmethod
    def seal(self, data: bytes) -> bytes:
        """One record carrying ``data`` (at most 16 KiB), not sent."""

    @abstractmethod
    def recv_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes of plaintext, receiving records as needed."""

    @abstractmethod
    def version(self) -> str:
        """The negotiated protocol version, as ``"TLSv1.2"``."""

    @abstractmethod
    def cipher(self) -> str:
        """The negotiated ciphersuite by its IANA name."""

    def send(self, data: bytes) -> None:
        for start in range(0, len(data), 16384):
            self.sock.sendall(self.seal(data[start : start + 16384]))

    def _receive(self) -> bytes:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise EOFError("the PAL end closed the connection")
        self.wire += data
        return data

    def close(self) -> None:
        self.sock.close()


def outside_library(pal_tls: str) -> str:
    """The library an outside peer of a PAL end using ``pal_tls`` is made from: the other
    backend's library where it is installed, so each backend is held against the other."""
    others = [name for name in TLS_BACKENDS if name != pal_tls]
    return others[0] if others else pal_tls


def outside_tls(pal_tls: str, sock: socket.socket, psk: bytes, *, server: bool) -> OutsideTls:
    """An outside peer for a PAL end whose host uses the TLS backend ``pal_tls``."""
    if outside_library(pal_tls) == "mbedtls":
        from ._outside_mbedtls import MbedtlsOutside

        return MbedtlsOutside(sock, psk, server=server)
    if sys.version_info >= (3, 13):
        from ._outside_openssl import OpenSslOutside

        return OpenSslOutside(sock, psk, server=server)
    raise AssertionError("ssl has no TLS-PSK callbacks before Python 3.13")


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


class _NoMemoryForAnAccount(dict[int, dict[int, int]]):
    """A host's per-thread accounts where making a thread's first one fails for want of
    memory."""

    def __missing__(self, ident: int) -> dict[int, int]:
        raise MemoryError


def start_without_an_account(host: pal.Host, timeout: float) -> list[object]:
    """``host.thread_create(outcome.append, "ran")`` called from a new thread whose
    account in ``host`` cannot be made (MemoryError in ``_accounts.__missing__``);
    ``outcome``, with what the call raised appended."""
    outcome: list[object] = []

    def start_from_a_thread_without_an_account() -> None:
        try:
            host.thread_create(outcome.append, "ran")
        except BaseException as exc:  # (the outcome is what is checked)
            outcome.append(exc)

    saved = host._accounts
    host._accounts = _NoMemoryForAnAccount()  # type: ignore[assignment]
    try:
        creator = threading.Thread(target=start_from_a_thread_without_an_account)
        creator.start()
        creator.join(timeout)
        assert not creator.is_alive()
    finally:
        host._accounts = saved
    return outcome


@contextmanager
def switching_often() -> Iterator[None]:
    """The interpreter switching threads as often as it can, within the block."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
