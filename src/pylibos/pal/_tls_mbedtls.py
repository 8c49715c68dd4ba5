"""The mbed TLS backend: TLS 1.2 PSK sessions over python-mbedtls' buffer API.

The buffer API (``ClientContext.wrap_buffers``) is sans-IO: the caller moves ciphertext
between mbed TLS and the socket.  Its edges, handled here and nowhere else:

* ``write`` returns the number of *record* bytes it queued, not the plaintext consumed,
  and refuses (``WantReadError``) a plaintext that would overflow its fixed-size outgoing
  ring.  We seal at most one record's worth (16 KiB) per call and drain the ring at once.
* ``receive_from_network`` raises ``BufferError`` when its fixed-size incoming ring would
  overflow (about 32 KiB).  We feed at most ``_FEED`` bytes at a time and pull plaintext
  out between feeds, so a partial record plus one feed always fits.
* ``read(amt)`` loops over ``readinto`` while the incoming ring holds bytes, and when a
  later call raises ``WantReadError`` (a whole record followed by part of the next) the
  plaintext it already decrypted is dropped; on an empty ring it returns ``b""`` without
  asking mbed TLS.  We call ``readinto``, one ``mbedtls_ssl_read`` each, instead.
* ``do_handshake`` advances one state per call and returns normally while the handshake
  is still running; ``WantReadError``/``WantWriteError`` mean "move bytes", not failure.
* mbed TLS consumes a partial record into its own state, so the ring cannot tell us
  whether the stream stopped in the middle of a record (``TlsSession`` tracks that).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, cast

from mbedtls import tls
from mbedtls.exceptions import TLSError

from ._tls import CIPHERSUITE, MAX_PLAINTEXT, PSK_IDENTITY, TlsFailure, TlsSession

_FEED = 8192
_ERR_PEER_CLOSE_NOTIFY = 0x7880
# The stubs declare HandshakeStep's members as ints; at run time they are enum members.
_HANDSHAKE_OVER = cast(tls.HandshakeStep, tls.HandshakeStep.HANDSHAKE_OVER)


def _configuration(psk: bytes, server: bool) -> tls.TLSConfiguration:
    return tls.TLSConfiguration(
        ciphers=(CIPHERSUITE,),
        lowest_supported_version=tls.TLSVersion.TLSv1_2,
        highest_supported_version=tls.TLSVersion.TLSv1_2,
        validate_certificates=False,
        pre_shared_key=None if server else (PSK_IDENTITY, psk),
        pre_shared_key_store={PSK_IDENTITY: psk} if server else {},
    )


def _describe(exc: TLSError) -> str:
    text = str(exc)
    return text if text and text != "TLSError()" else type(exc).__name__


class MbedtlsSession(TlsSession):
    backend = "mbedtls"

    def __init__(self, psk: bytes, *, server: bool) -> None:
        super().__init__(psk, server=server)
        cfg = _configuration(psk, server)
        if server:
            self._buf = tls.ServerContext(cfg).wrap_buffers()
        else:
            self._buf = tls.ClientContext(cfg).wrap_buffers(None)

    @property
    def established(self) -> bool:
        return self._buf._handshake_state is _HANDSHAKE_OVER

    def handshake(self, send: Callable[[bytes], None], recv: Callable[[], bytes]) -> None:
        while not self.established:
            want_read = False
            try:
                self._buf.do_handshake()
            except tls.WantReadError:
                want_read = True
            except tls.WantWriteError:
                pass
            except TLSError as exc:
                self._flush_best_effort(send)
                raise TlsFailure(f"handshake failed: {_describe(exc)}") from exc
            out = self._take_outgoing()
            if out:
                send(out)
            if want_read:
                data = recv()
                if not data:
                    raise TlsFailure("peer closed the connection during the handshake")
                self.feed(data)
        # Application data may have arrived right behind the peer's Finished message.
        self._decrypt_available()

    def seal(self, data: bytes | memoryview) -> tuple[int, bytes]:
        n = min(len(data), MAX_PLAINTEXT)
        try:
            self._buf.write(bytes(data[:n]))
        except TLSError as exc:
            raise TlsFailure(f"cannot encrypt: {_describe(exc)}") from exc
        return n, self._take_outgoing()

    def _absorb(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), _FEED):
            self._buf.receive_from_network(bytes(view[start : start + _FEED]))
            if self.established:
                self._decrypt_available()

    def close_notify(self) -> bytes:
        try:
            self._buf.shutdown()
        except TLSError:
            return b""
        return self._take_outgoing()

    def _decrypt_available(self) -> None:
        # Not read(): see the module docstring.
        chunk = bytearray(MAX_PLAINTEXT)
        while not self.peer_closed:
            try:
                n = self._buf.readinto(cast(Any, chunk), MAX_PLAINTEXT)
            except tls.WantReadError:
                return
            except TLSError as exc:
                err: int | None = getattr(exc, "err", None)
                if err is not None and abs(err) == _ERR_PEER_CLOSE_NOTIFY:
                    self.peer_closed = True
                    return
                raise TlsFailure(f"record rejected: {_describe(exc)}") from exc
            self._plain += memoryview(chunk)[:n]

    def _take_outgoing(self) -> bytes:
        out = self._buf.peek_outgoing(1 << 20)
        if out:
            self._buf.consume_outgoing(len(out))
        return bytes(out)

    def _flush_best_effort(self, send: Callable[[bytes], None]) -> None:
        out = self._take_outgoing()
        # The alert is a courtesy; the failure is already known.
        if out:
            with contextlib.suppress(Exception):
                send(out)
