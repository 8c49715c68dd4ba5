"""An outside TLS-PSK peer made straight from the standard library's ssl (OpenSSL), not
pylibos' TLS code.  It needs ssl's PSK callbacks: Python 3.13 or newer."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys

from ._pal_support import CIPHERSUITE, OutsideTls

assert sys.version_info >= (3, 13), "ssl has TLS-PSK callbacks from Python 3.13 on"

_NAMES = {"PSK-AES128-GCM-SHA256": CIPHERSUITE}


class OpenSslOutside(OutsideTls):
    errors = (ssl.SSLError, EOFError)
    library = "openssl"

    def __init__(
        self, sock: socket.socket, psk: bytes, *, server: bool, identity: str = "dummy"
    ) -> None:
        super().__init__(sock)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("PSK-AES128-GCM-SHA256")
        if server:
            ctx.set_psk_server_callback(lambda who: psk if who == identity else b"")
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_psk_client_callback(lambda hint: (identity, psk))
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_side=server)

    def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                self._in.write(self._receive())
                continue
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._flush()
                raise
            break
        self._flush()

    def _flush(self) -> None:
        out = self._out.read()
        if out:
            self.sock.sendall(out)

    def seal(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self._out.read()

    def recv_exact(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            try:
                out += self.obj.read(size - len(out))
            except ssl.SSLWantReadError:
                self._in.write(self._receive())
        return bytes(out)

    def version(self) -> str:
        return str(self.obj.version())

    def cipher(self) -> str:
        suite = self.obj.cipher()
        assert suite is not None
        return _NAMES.get(suite[0], suite[0])
