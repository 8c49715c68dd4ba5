"""The OpenSSL backend: TLS 1.2 PSK sessions over the standard library's ``ssl``.

An ``SSLObject`` over two ``MemoryBIO``s is sans-IO, like mbed TLS's buffer API: the
session never touches the socket, so the host moves (and counts) every byte.  Its edges:

* The PSK callbacks (``set_psk_client_callback`` / ``set_psk_server_callback``) are set
  per context and are not told which connection asks.  A context costs a few hundred
  microseconds to make, so clients share one, and a client's key reaches the callback
  through a thread-local: OpenSSL calls it inside ``do_handshake``, on the thread that
  called it, and the session puts its key there for exactly that call (a callback that
  finds none answers with none, and the handshake fails).  Servers cannot share one: a
  server context caches the sessions that ended with close_notify, the standard library
  has no way to turn that cache off, and a client offering a cached session ID resumes it
  without any PSK callback.  Shared, it would let a session of one pipe open another pipe
  whose key differs.  So each server session has its own context, holding only its key.
* The server callback returns an empty key for an unknown identity, which OpenSSL treats
  as "no such identity": the handshake fails, as mbed TLS fails one against its key store.
* With memory BIOs OpenSSL never blocks on output: a whole flight (or record) is queued
  in the outgoing BIO and taken from there in one piece, so one send moves it.  mbed TLS
  hands out one message at a time, so the same handshake takes fewer sends here.
* ``read`` returns at most one record's plaintext per call and raises
  ``SSLWantReadError`` when no whole record is left, and ``SSLError`` (bad record MAC,
  ...) on a record that fails authentication; a failed record yields no plaintext.  The
  peer's close_notify is ``b""``, or ``SSLZeroReturnError`` if this end sent its own
  first.  We never write EOF into the incoming BIO: the host
  learns the end of the stream from the socket and judges it (``mid_record``, a cut
  without close_notify) itself, so ``b""`` here means close_notify and nothing else.
* Session tickets are off and no session outlives its own context (tested): nothing is
  resumed, and each handshake is the full PSK one Gramine's pipes make.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import sys
import threading
from collections.abc import Callable

from ._tls import MAX_PLAINTEXT, PSK_IDENTITY, TlsFailure, TlsSession

assert sys.version_info >= (3, 13), "ssl has TLS-PSK callbacks from Python 3.13 on"

OPENSSL_CIPHER = "PSK-AES128-GCM-SHA256"
"""``CIPHERSUITE`` by OpenSSL's name."""


class _HandshakeKey(threading.local):
    psk: bytes | None = None


_key = _HandshakeKey()


def _client_key(hint: str | None) -> tuple[str | None, bytes]:
    return PSK_IDENTITY, _key.psk or b""


def _configure(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(OPENSSL_CIPHER)
    ctx.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
    return ctx


@functools.cache
def _client_context() -> ssl.SSLContext:
    ctx = _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    # No certificate is involved: the PSK alone authenticates both ends.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_psk_client_callback(_client_key)
    return ctx


def _server_context(psk: bytes) -> ssl.SSLContext:
    ctx = _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))

    def server_key(identity: str | None) -> bytes:
        return psk if identity == PSK_IDENTITY else b""

    ctx.set_psk_server_callback(server_key)
    return ctx


def _describe(exc: ssl.SSLError) -> str:
    return exc.reason or exc.strerror or type(exc).__name__


class OpenSslSession(TlsSession):
    backend = "openssl"

    def __init__(self, psk: bytes, *, server: bool) -> None:
        super().__init__(psk, server=server)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._psk = bytes(psk)
        ctx = _server_context(self._psk) if server else _client_context()
        self._obj = ctx.wrap_bio(self._incoming, self._outgoing, server_side=server)
        self._established = False

    @property
    def established(self) -> bool:
        return self._established

    def handshake(self, send: Callable[[bytes], None], recv: Callable[[], bytes]) -> None:
        while not self._established:
            try:
                _key.psk = self._psk
                try:
                    self._obj.do_handshake()
                finally:
                    _key.psk = None
            except ssl.SSLWantReadError:
                out = self._outgoing.read()
                if out:
                    send(out)
                data = recv()
                if not data:
                    raise TlsFailure("peer closed the connection during the handshake") from None
                self.feed(data)
                continue
            except ssl.SSLError as exc:
                self._flush_best_effort(send)
                raise TlsFailure(f"handshake failed: {_describe(exc)}") from exc
            self._established = True
        out = self._outgoing.read()
        if out:
            send(out)
        # Application data may have arrived right behind the peer's Finished message.
        self._decrypt_available()

    def seal(self, data: bytes | memoryview) -> tuple[int, bytes]:
        n = min(len(data), MAX_PLAINTEXT)
        try:
            self._obj.write(data[:n])
        except ssl.SSLError as exc:
            raise TlsFailure(f"cannot encrypt: {_describe(exc)}") from exc
        return n, self._outgoing.read()

    def _absorb(self, data: bytes) -> None:
        self._incoming.write(data)
        if self._established:
            self._decrypt_available()

    def close_notify(self) -> bytes:
        try:
            self._obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent ours; the peer's has not come, and we do not wait for it
        except (ssl.SSLError, ValueError):
            return b""
        return self._outgoing.read()

    def _decrypt_available(self) -> None:
        while not self.peer_closed:
            try:
                data = self._obj.read(MAX_PLAINTEXT)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:
                # close_notify when this end had sent its own first (read() returns b""
                # only when it had not).
                self.peer_closed = True
                return
            except ssl.SSLError as exc:
                raise TlsFailure(f"record rejected: {_describe(exc)}") from exc
            if not data:
                self.peer_closed = True
                return
            self._plain += data

    def _flush_best_effort(self, send: Callable[[bytes], None]) -> None:
        out = self._outgoing.read()
        # The alert is a courtesy; the failure is already known.
        if out:
            with contextlib.suppress(Exception):
                send(out)
