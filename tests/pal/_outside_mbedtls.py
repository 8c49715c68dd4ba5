"""An outside TLS-PSK peer made straight from python-mbedtls (not pylibos' TLS code)."""

from __future__ import annotations

import contextlib
import socket
from typing import Any, cast

from mbedtls import tls
from mbedtls.exceptions import TLSError

from ._pal_support import CIPHERSUITE, OutsideTls

_HANDSHAKE_OVER = cast(tls.HandshakeStep, tls.HandshakeStep.HANDSHAKE_OVER)


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


class MbedtlsOutside(OutsideTls):
    errors = (TLSError, EOFError)
    library = "mbedtls"

    def __init__(self, sock: socket.socket, psk: bytes, *, server: bool) -> None:
        super().__init__(sock)
        config = mbedtls_configuration(psk, server=server)
        self.buf = (
            tls.ServerContext(config).wrap_buffers()
            if server
            else tls.ClientContext(config).wrap_buffers(None)
        )

    def handshake(self) -> None:
        while self.buf._handshake_state is not _HANDSHAKE_OVER:
            try:
                self.buf.do_handshake()
            except tls.WantReadError:
                self._flush()
                self.buf.receive_from_network(self._receive())
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

    def seal(self, data: bytes) -> bytes:
        self.buf.write(data)
        return self._take()

    def recv_exact(self, size: int) -> bytes:
        # readinto(), one mbedtls_ssl_read() per call: the buffer's read() returns b"" on
        # an empty ring and drops plaintext when a partial record follows a whole one.
        out = bytearray()
        chunk = bytearray(16384)
        while len(out) < size:
            try:
                n = self.buf.readinto(cast(Any, chunk), min(len(chunk), size - len(out)))
            except tls.WantReadError:
                self.buf.receive_from_network(self._receive())
                continue
            out += chunk[:n]
        return bytes(out)

    def version(self) -> str:
        version = self.buf.negotiated_tls_version()
        return "TLSv1.2" if version == tls.TLSVersion.TLSv1_2 else str(version)

    def cipher(self) -> str:
        return str(self.buf.cipher())
