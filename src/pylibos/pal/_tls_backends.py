"""The TLS backends of sgx pipes: which this interpreter can use, and their session classes.

``_tls`` defines the session interface; each backend module implements it.  This module
sits above them all, so the interface never imports its implementations.
"""

from __future__ import annotations

import functools
import importlib.util
import ssl
import sys

from ._tls import TlsSession

TLS_BACKENDS = ("mbedtls", "openssl")
"""Every TLS backend, preferred first: mbed TLS is what Gramine uses."""


@functools.cache
def tls_backend_problem(name: str) -> str | None:
    """Why TLS backend ``name`` cannot be used in this interpreter, or None if it can."""
    if name == "mbedtls":
        if importlib.util.find_spec("mbedtls") is None:
            return (
                "python-mbedtls is not installed (it publishes wheels up to Python 3.12; "
                f"this is Python {sys.version.split()[0]}: build it from source against "
                "mbed TLS 2.28 headers, e.g. Debian's libmbedtls-dev, or use the openssl backend)"
            )
        return None
    if name == "openssl":
        if not hasattr(ssl.SSLContext, "set_psk_client_callback"):
            return (
                "the standard library's ssl has no TLS-PSK callbacks before Python 3.13 "
                f"(this is Python {sys.version.split()[0]}; use the mbedtls backend)"
            )
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers("PSK-AES128-GCM-SHA256")
        except ssl.SSLError:
            return f"{ssl.OPENSSL_VERSION} offers no PSK-AES128-GCM-SHA256 ciphersuite"
        return None
    raise ValueError(f"unknown TLS backend {name!r}; choose one of {', '.join(TLS_BACKENDS)}")


def available_tls_backends() -> tuple[str, ...]:
    """The TLS backends this interpreter can use, preferred first."""
    return tuple(name for name in TLS_BACKENDS if tls_backend_problem(name) is None)


def default_tls_backend() -> str:
    """mbed TLS where python-mbedtls is installed, OpenSSL otherwise."""
    available = available_tls_backends()
    if not available:
        problems = "; ".join(f"{n}: {tls_backend_problem(n)}" for n in TLS_BACKENDS)
        raise ValueError(f"no TLS backend is available for sgx pipes ({problems})")
    return available[0]


def session_class(name: str) -> type[TlsSession]:
    """The session class of backend ``name``; ``ValueError`` naming the problem if the
    name is unknown or the backend cannot be used here."""
    problem = tls_backend_problem(name)
    if problem is not None:
        raise ValueError(f"TLS backend {name!r} is not available: {problem}")
    if name == "mbedtls":
        from ._tls_mbedtls import MbedtlsSession

        return MbedtlsSession
    if sys.version_info >= (3, 13):
        from ._tls_openssl import OpenSslSession

        return OpenSslSession
    raise AssertionError("tls_backend_problem() refuses openssl before Python 3.13")
