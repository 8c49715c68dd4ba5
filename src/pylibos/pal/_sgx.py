"""The Linux-SGX host: pipes speak TLS-PSK, keys derive from the master key, and the
number of threads is bounded, as Gramine's ``pal/src/host/linux-sgx`` does it.

The mechanisms are ``_tls_pipes`` (the pipe hooks) and ``_slots`` (the thread hooks);
this module puts them over ``Host`` and derives the session keys.  The TLS library is
the host's ``tls`` option (``"mbedtls"`` or ``"openssl"``, see ``_tls``).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._errors import PalError, PalErrorCode
from ._host import Host
from ._slots import ThreadSlots
from ._tls_backends import default_tls_backend, session_class
from ._tls_pipes import TlsPipes


class SgxHost(TlsPipes, ThreadSlots, Host):
    kind = "sgx"

    def __init__(
        self,
        master_key: bytes | None = None,
        *,
        instance: str | None = None,
        max_threads: int = 256,
        tls: str | None = None,
    ) -> None:
        if tls is not None and not isinstance(tls, str):
            raise ValueError(f"tls must be a backend name, got {tls!r}")
        self._session = session_class(default_tls_backend() if tls is None else tls)
        self.tls = self._session.backend
        """The TLS library of this host's pipes: ``"mbedtls"`` or ``"openssl"``."""
        super().__init__(master_key, instance=instance)
        self._init_slots(max_threads)

    def session_key(self, name: str) -> bytes:
        """HKDF-SHA256(master key, no salt, info = NAME as UTF-8 + NUL), 32 bytes."""
        if not isinstance(name, str) or not name:
            raise PalError(PalErrorCode.INVAL, f"session key needs a pipe name, got {name!r}")
        info = name.encode() + b"\0"
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            self._master_key
        )


__all__ = ["SgxHost"]
