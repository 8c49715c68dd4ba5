"""TLS 1.2 PSK sessions for sgx pipes: one sans-IO interface, two libraries behind it.

The host owns the socket and counts every send and recv; a session only turns ciphertext
into plaintext and back (``handshake`` moves bytes through the two callables it is given).
So the host code, its deadlines and its host-call counts are the same whichever library
does the cryptography:

Which library a host uses is chosen in ``_tls_backends``.

* ``mbedtls``: mbed TLS through python-mbedtls (``_tls_mbedtls``), the library Gramine's
  PAL uses.  python-mbedtls publishes wheels up to CPython 3.12 only.
* ``openssl``: OpenSSL through the standard library's ``ssl`` (``_tls_openssl``), with
  ``MemoryBIO``/``SSLObject``.  Its TLS 1.2 PSK callbacks exist from CPython 3.13 on.

Both speak the same protocol on the wire, so either end of a pipe may use either library.
What the two share lives here: the plaintext buffer, and record boundaries tracked from the
5-byte headers, because neither library tells whether the stream stopped inside a record
(needed to report a truncated record at end of stream).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

# The identity both ends present; only the key authenticates.  Gramine uses this one too.
PSK_IDENTITY = "dummy"
CIPHERSUITE = "TLS-PSK-WITH-AES-128-GCM-SHA256"
"""The suite by its IANA/mbed TLS name; OpenSSL calls it ``PSK-AES128-GCM-SHA256``."""
MAX_PLAINTEXT = 16384
_HEADER = 5


class TlsFailure(Exception):
    """The session cannot go on: failed handshake, bad record, or peer gone mid-handshake."""


class TlsSession(ABC):
    """One end of a TLS-PSK session.  Not thread-safe: callers serialise access."""

    backend: ClassVar[str]

    def __init__(self, psk: bytes, *, server: bool) -> None:
        if len(psk) != 32:
            raise ValueError(f"PSK must be 32 bytes, got {len(psk)}")
        self.server = server
        self._plain = bytearray()
        self._header = bytearray()
        self._body_left = 0
        self.peer_closed = False

    @property
    @abstractmethod
    def established(self) -> bool:
        """True once the handshake has completed."""

    @abstractmethod
    def handshake(self, send: Callable[[bytes], None], recv: Callable[[], bytes]) -> None:
        """Run the handshake to its end, moving bytes with ``send`` and ``recv``.

        ``recv`` returns ``b""`` at end of stream.  Raises ``TlsFailure`` on any failure,
        after trying to send the alert the library queued for the peer.  Plaintext that
        arrived right behind the peer's last handshake message is kept.
        """

    @abstractmethod
    def seal(self, data: bytes | memoryview) -> tuple[int, bytes]:
        """Encrypt up to one record of ``data``; returns (plaintext consumed, record bytes)."""

    def feed(self, data: bytes) -> None:
        """Hand received ciphertext to the session and decrypt what is complete.

        Raises ``TlsFailure`` on a record that fails authentication; no plaintext of it
        is ever made available.
        """
        self._track_records(data)
        self._absorb(data)

    @abstractmethod
    def _absorb(self, data: bytes) -> None:
        """Give ``data`` to the library; once established, decrypt what is complete into
        ``_plain`` and set ``peer_closed`` on the peer's close_notify."""

    @abstractmethod
    def close_notify(self) -> bytes:
        """The close_notify alert to send to the peer (empty if it cannot be made)."""

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes of decrypted plaintext, removed from the buffer."""
        out = bytes(self._plain[:size])
        del self._plain[:size]
        return out

    @property
    def buffered(self) -> int:
        """Decrypted bytes waiting to be taken."""
        return len(self._plain)

    @property
    def mid_record(self) -> bool:
        """True when the ciphertext received so far stops inside a record."""
        return bool(self._header) or self._body_left > 0

    def _track_records(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._body_left:
                step = min(self._body_left, n - i)
                self._body_left -= step
                i += step
                continue
            need = _HEADER - len(self._header)
            self._header += data[i : i + need]
            i += min(need, n - i)
            if len(self._header) == _HEADER:
                self._body_left = int.from_bytes(self._header[3:5], "big")
                self._header.clear()
