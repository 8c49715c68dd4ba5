"""The choice of TLS library for sgx pipes, and the two libraries talking to each other.

Hosts of the two backends meet over real abstract sockets: a pipe whose ends use different
libraries must handshake and carry records both ways, as Gramine's mbed TLS would with any
other TLS 1.2 PSK implementation holding the key.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
from collections.abc import Iterator

import pytest

from pylibos import pal
from pylibos.pal import WAIT_READ, PalError, PalErrorCode

from ._pal_support import TLS_BACKENDS, WAIT_S, Background, hkdf_sha256, read_exact

BOTH = {"mbedtls", "openssl"} <= set(TLS_BACKENDS)
NOT_BOTH = (
    f"needs both TLS backends in one interpreter; Python {sys.version.split()[0]} has only "
    f"{', '.join(TLS_BACKENDS)} (ssl has TLS-PSK callbacks from 3.13 on; python-mbedtls has "
    "wheels up to 3.12 and builds on 3.13 from source with mbed TLS 2.28 headers)"
)


def test_this_python_has_the_backend_its_install_provides() -> None:
    if sys.version_info >= (3, 13):
        assert "openssl" in TLS_BACKENDS
    else:
        assert "mbedtls" in TLS_BACKENDS, "python-mbedtls is a dependency below 3.13"


def test_default_is_mbed_tls_where_installed() -> None:
    expected = "mbedtls" if importlib.util.find_spec("mbedtls") else "openssl"
    assert pal.default_tls_backend() == expected
    host = pal.open_host("sgx")
    try:
        assert host.tls == expected
    finally:
        host.shutdown()
    direct = pal.open_host("direct")
    try:
        assert direct.tls is None
    finally:
        direct.shutdown()


def test_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown TLS backend 'gnutls'; choose one of mbedtls, "):
        pal.open_host("sgx", tls="gnutls")
    with pytest.raises(ValueError, match="tls must be a backend name, got 1"):
        pal.open_host("sgx", tls=1)


def test_tls_option_belongs_to_sgx_hosts() -> None:
    with pytest.raises(ValueError, match="tls applies only to sgx hosts"):
        pal.open_host("direct", tls="mbedtls")


@pytest.mark.parametrize("backend", pal.TLS_BACKENDS)
def test_unavailable_backend_is_refused_with_the_reason(backend: str) -> None:
    problem = pal.tls_backend_problem(backend)
    if problem is None:
        pytest.skip(f"{backend} is available on this Python")
    assert "3.1" in problem, "the reason names the Python versions that have it"
    with pytest.raises(ValueError, match=f"TLS backend '{backend}' is not available: ") as info:
        pal.open_host("sgx", tls=backend)
    assert problem in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("mbedtls") is None, reason="no python-mbedtls")
def test_session_key_matches_mbed_tls_hkdf() -> None:
    """The key comes from cryptography's HKDF; mbed TLS's, where installed, agrees."""
    from mbedtls import hkdf

    master = secrets.token_bytes(32)
    host = pal.open_host("sgx", master)
    try:
        for name in ("a", "event-17", "ünïcode"):
            info = name.encode() + b"\0"
            key = host.session_key(name)
            assert key == bytes(hkdf.hkdf(master, 32, info)) == hkdf_sha256(master, info, 32)
    finally:
        host.shutdown()


# -- one pipe, two libraries ---------------------------------------------------------------


@pytest.fixture(params=[("mbedtls", "openssl"), ("openssl", "mbedtls")], ids="-".join)
def mixed(request: pytest.FixtureRequest) -> Iterator[tuple[pal.Host, pal.Host]]:
    """(listening host, connecting host) on different TLS libraries, sharing the instance
    and the master key as two processes of one program would."""
    if not BOTH:
        pytest.skip(NOT_BOTH)
    listening_tls, connecting_tls = request.param
    instance, key = secrets.token_hex(6), secrets.token_bytes(32)
    listening = pal.open_host("sgx", key, instance=instance, tls=listening_tls)
    connecting = pal.open_host("sgx", key, instance=instance, tls=connecting_tls)
    yield listening, connecting
    listening.shutdown()
    connecting.shutdown()


def test_backends_handshake_and_exchange_records(mixed: tuple[pal.Host, pal.Host]) -> None:
    listening, connecting = mixed
    srv = listening.stream_open("pipe.srv:mixed")
    end = connecting.stream_open("pipe:mixed")  # TLS server, on its helper thread
    acc = listening.wait_for_client(srv)  # TLS client, handshakes here
    assert acc.encrypted and end.encrypted
    big = secrets.token_bytes(300_000)
    reader = Background(lambda: read_exact(listening, acc, len(big)))
    assert connecting.write(end, big) == len(big)
    assert reader.result() == big
    reader = Background(lambda: read_exact(connecting, end, 5))
    assert listening.write(acc, b"reply") == 5
    assert reader.result() == b"reply"
    assert listening.streams_wait_events([acc], [WAIT_READ], 0) == [0]
    # close_notify from one library is a clean end of stream to the other.
    connecting.close(end)
    (ready,) = listening.streams_wait_events([acc], [WAIT_READ], int(WAIT_S * 1e6))
    assert ready & WAIT_READ
    assert listening.read(acc, 10) == b""
    for handle in (acc, srv):
        listening.close(handle)
    for host in mixed:
        assert host.calls["send"] > 0 and host.calls["recv"] > 0


def test_backends_with_different_keys_refuse_each_other(mixed: tuple[pal.Host, pal.Host]) -> None:
    listening, connecting = mixed
    other = pal.open_host(
        "sgx", secrets.token_bytes(32), instance=listening.instance, tls=connecting.tls
    )
    try:
        srv = listening.stream_open("pipe.srv:keys")
        end = other.stream_open("pipe:keys")
        with pytest.raises(PalError) as info:
            listening.wait_for_client(srv)
        assert info.value.code is PalErrorCode.AUTH_FAILED
        with pytest.raises(PalError) as info:
            other.read(end, 1)
        assert info.value.code is PalErrorCode.AUTH_FAILED
        assert listening.open_handles() == [srv]
        listening.close(srv)
    finally:
        other.shutdown()
