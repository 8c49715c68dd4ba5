"""Opening hosts with bad arguments, and every PAL operation given bad input.

Each failure must come as ``PalError`` (or ``ValueError`` for ``open_host``) whose code says
what kind of failure it is and whose message says what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal import PalError, PalErrorCode

from ._pal_support import KINDS

STREAMEXIST, STREAMNOTEXIST = PalErrorCode.STREAMEXIST, PalErrorCode.STREAMNOTEXIST

# -- open_host -----------------------------------------------------------------------------


def test_open_host_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(ValueError, match=r"unknown host kind 'vmx'; choose one of direct, sgx"):
        pal.open_host("vmx")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_open_host_master_key_must_be_32_bytes(kind: str, size: int) -> None:
    with pytest.raises(ValueError, match=rf"master_key must be 32 bytes, got {size}$"):
        pal.open_host(kind, b"k" * size)


@pytest.mark.parametrize("kind", KINDS)
def test_open_host_master_key_must_be_bytes(kind: str) -> None:
    with pytest.raises(ValueError, match=r"master_key must be 32 bytes, got <class 'str'>"):
        pal.open_host(kind, "k" * 32)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_open_host_takes_a_32_byte_key(kind: str) -> None:
    host = pal.open_host(kind, bytes(32))
    try:
        assert host.kind == kind
    finally:
        host.shutdown()


def test_max_threads_is_refused_on_direct() -> None:
    with pytest.raises(ValueError, match="max_threads applies only to sgx hosts"):
        pal.open_host("direct", max_threads=4)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "8"])
def test_max_threads_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ValueError, match="max_threads must be a positive integer"):
        pal.open_host("sgx", max_threads=value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("instance", ["", "a/b", "a\0b"])
def test_instance_must_be_a_plain_name(kind: str, instance: str) -> None:
    with pytest.raises(ValueError, match="instance must be a non-empty name"):
        pal.open_host(kind, instance=instance)


# -- bad input, on both host kinds ---------------------------------------------------------


def pal_error(fn: Callable[..., Any], *args: Any, code: PalErrorCode, match: str) -> PalError:
    """Call ``fn(*args)``, which must fail with ``code`` and a message matching ``match``."""
    with pytest.raises(PalError, match=match) as info:
        fn(*args)
    err = info.value
    assert err.code is code, f"{err.code.name} instead of {code.name}: {err}"
    assert err.message, "a PalError needs a message"
    assert str(err).startswith(f"{code.name}: ")
    return err


class TestBadInput:
    @pytest.mark.parametrize("uri", ["pipe", "eventfd", "", "pipe.srv"])
    def test_uri_without_colon(self, host: pal.Host, uri: str) -> None:
        pal_error(host.stream_open, uri, code=PalErrorCode.INVAL, match="malformed URI")

    def test_uri_not_a_string(self, host: pal.Host) -> None:
        pal_error(host.stream_open, b"pipe:x", code=PalErrorCode.INVAL, match="malformed URI")

    @pytest.mark.parametrize("uri", ["file:/etc/passwd", "tcp:1.2.3.4:5", "PIPE:x", ":x"])
    def test_unknown_prefix(self, host: pal.Host, uri: str) -> None:
        err = pal_error(
            host.stream_open, uri, code=PalErrorCode.NOTSUPPORT, match="unknown URI prefix"
        )
        assert repr(uri.partition(":")[0]) in err.message

    def test_eventfd_takes_no_name(self, host: pal.Host) -> None:
        pal_error(host.stream_open, "eventfd:x", code=PalErrorCode.INVAL, match="takes no name")

    @pytest.mark.parametrize("prefix", ["pipe.srv", "pipe", "pipe.raw.srv", "pipe.raw"])
    def test_empty_pipe_name(self, host: pal.Host, prefix: str) -> None:
        pal_error(host.stream_open, f"{prefix}:", code=PalErrorCode.INVAL, match="name is empty")

    def test_pipe_name_with_nul(self, host: pal.Host) -> None:
        pal_error(host.stream_open, "pipe.srv:a\0b", code=PalErrorCode.INVAL, match="NUL")

    @pytest.mark.parametrize("raw", [False, True])
    def test_pipe_name_length_limit_is_exact_and_named(self, host: pal.Host, raw: bool) -> None:
        # sun_path holds 108 bytes; an abstract name spends the first on its NUL.
        room = 107 - len(f"pylibos/{host.instance}/p/".encode())
        srv = "pipe.raw.srv" if raw else "pipe.srv"
        longest = host.stream_open(f"{srv}:{'n' * room}")
        host.close(longest)
        for name in ("n" * (room + 1), "é" * (room // 2 + 1), "n" * 500):
            err = pal_error(
                host.stream_open, f"{srv}:{name}", code=PalErrorCode.TOOLONG, match="sockaddr_un"
            )
            assert f"pipe name is {len(name.encode())} bytes; at most {room} fit" in err.message
        err = pal_error(
            host.stream_open, f"pipe:{'n' * (room + 1)}", code=PalErrorCode.TOOLONG, match="at most"
        )

    @pytest.mark.parametrize(
        ("listener", "uri", "code", "match"),
        [
            ("pipe.srv:dup", "pipe.srv:dup", STREAMEXIST, "already has a listener"),
            ("pipe.raw.srv:dup", "pipe.raw.srv:dup", STREAMEXIST, "already has a listener"),
            (None, "pipe:nobody", STREAMNOTEXIST, "no listener"),
            (None, "pipe.raw:nobody", STREAMNOTEXIST, "no listener"),
            # Raw and protected pipes never pair.
            ("pipe.srv:split", "pipe.raw:split", STREAMNOTEXIST, "no listener"),
            ("pipe.raw.srv:split", "pipe:split", STREAMNOTEXIST, "no listener"),
        ],
    )
    def test_open_against_the_listeners(
        self, host: pal.Host, listener: str | None, uri: str, code: PalErrorCode, match: str
    ) -> None:
        """A second listener on a name, a connect with none, a raw end to a protected one."""
        srv = None if listener is None else host.stream_open(listener)
        pal_error(host.stream_open, uri, code=code, match=match)
        if srv is not None:
            host.close(srv)

    def test_read_write_on_closed_handle(self, host: pal.Host) -> None:
        a, c = host.create_pipe()
        efd = host.stream_open("eventfd:")
        for handle in (a, c, efd):
            host.close(handle)
            pal_error(host.read, handle, 1, code=PalErrorCode.BADHANDLE, match="closed")
            pal_error(host.write, handle, b"x", code=PalErrorCode.BADHANDLE, match="closed")
            pal_error(
                host.streams_wait_events,
                [handle],
                [pal.WAIT_READ],
                0,
                code=PalErrorCode.BADHANDLE,
                match="closed",
            )
            host.close(handle)  # a second close does nothing

    def test_not_a_handle(self, host: pal.Host) -> None:
        pal_error(host.read, 3, 1, code=PalErrorCode.BADHANDLE, match="not a PAL handle")
        pal_error(host.close, None, code=PalErrorCode.BADHANDLE, match="not a PAL handle")

    def test_read_write_on_listening_pipe(self, host: pal.Host) -> None:
        srv = host.stream_open("pipe.srv:listener")
        pal_error(host.read, srv, 1, code=PalErrorCode.NOTCONNECTION, match="does not support")
        pal_error(host.write, srv, b"x", code=PalErrorCode.NOTCONNECTION, match="does not support")
        pal_error(host.delete, srv, code=PalErrorCode.NOTCONNECTION, match="does not support")
        host.close(srv)

    def test_wait_for_client_on_non_server(self, host: pal.Host) -> None:
        a, c = host.create_pipe()
        efd = host.stream_open("eventfd:")
        for handle in (a, c, efd):
            pal_error(
                host.wait_for_client, handle, code=PalErrorCode.NOTSERVER, match="not a listening"
            )
            host.close(handle)

    @pytest.mark.parametrize("size", [0, -1])
    def test_read_size_must_be_positive(self, host: pal.Host, size: int) -> None:
        a, c = host.create_pipe()
        pal_error(host.read, a, size, code=PalErrorCode.INVAL, match="read size must be positive")
        host.close(a)
        host.close(c)

    def test_write_wants_bytes(self, host: pal.Host) -> None:
        a, c = host.create_pipe()
        pal_error(host.write, a, "text", code=PalErrorCode.INVAL, match="write wants bytes")
        host.close(a)
        host.close(c)

    def test_wait_events_arguments(self, host: pal.Host) -> None:
        efd = host.stream_open("eventfd:")
        pal_error(host.streams_wait_events, [efd], [], 0, code=PalErrorCode.INVAL, match="differ")
        pal_error(
            host.streams_wait_events,
            [efd],
            [pal.WAIT_READ],
            -1,
            code=PalErrorCode.INVAL,
            match="timeout_us",
        )
        host.close(efd)

    def test_session_keys(self, host: pal.Host) -> None:
        if host.kind == "direct":
            pal_error(host.session_key, "x", code=PalErrorCode.NOTSUPPORT, match="no session keys")
        else:
            pal_error(host.session_key, "", code=PalErrorCode.INVAL, match="needs a pipe name")

    def test_shut_down_host_refuses_work(self, host: pal.Host) -> None:
        host.shutdown()
        pal_error(host.stream_open, "eventfd:", code=PalErrorCode.BADHANDLE, match="shut down")
        pal_error(host.thread_create, print, code=PalErrorCode.BADHANDLE, match="shut down")
