"""A host between the two ends of a TLS data pipe: it replays, reorders, drops records
and forges a plaintext close_notify.  None of it yields plaintext the writer did not
send in that order, or a clean end of stream the writer did not send.

The host takes the ciphertext off the reading end's socket before the PAL reads it, and
puts back what it likes through the writing end's socket, as a host that carries the
bytes can.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pylibos import pal
from pylibos.pal import Handle, PalError, PalErrorCode

FIRST = b"first record of the program's data"
SECOND = b"second record of the program's data"
_OVERHEAD = 5 + 8 + 16  # header, explicit nonce, GCM tag
PLAIN_CLOSE_NOTIFY = bytes([21, 3, 3, 0, 2, 1, 0])  # alert(21), TLS 1.2, warning, close_notify


@pytest.fixture(params=pal.available_tls_backends())
def pipe(request: pytest.FixtureRequest) -> Iterator[tuple[pal.Host, Handle, Handle, list[bytes]]]:
    """A TLS pipe with two records in flight, taken off the wire by the host; once per
    TLS library this Python has."""
    with pal.open_host("sgx", tls=request.param) as host:
        reader, writer = host.create_pipe()
        try:
            host.write(writer, FIRST)
            host.write(writer, SECOND)
            assert reader._sock is not None
            want = 2 * _OVERHEAD + len(FIRST) + len(SECOND)
            wire = b""
            while len(wire) < want:
                wire += reader._sock.recv(want - len(wire))  # the host takes them
            records = []
            while wire:
                size = 5 + int.from_bytes(wire[3:5], "big")
                records.append(wire[:size])
                wire = wire[size:]
            assert len(records) == 2
            yield host, reader, writer, records
        finally:
            host.close(reader)
            host.close(writer)


def _put_back(writer: Handle, data: bytes) -> None:
    assert writer._sock is not None
    writer._sock.sendall(data)


def _read_until_refused(host: pal.Host, reader: Handle) -> bytes:
    """Read until the PAL refuses the stream; returns the plaintext it gave before.  A
    refusal is for good, and an end of stream is never reported instead."""
    got = b""
    while True:
        try:
            data = host.read(reader, 1024)
        except PalError as exc:
            assert exc.code is PalErrorCode.AUTH_FAILED, exc
            break
        assert data, "a forged stream read as a clean end"
        got += data
    with pytest.raises(PalError):
        host.read(reader, 1024)
    return got


def test_replayed_record_is_refused(pipe: tuple[pal.Host, Handle, Handle, list[bytes]]) -> None:
    host, reader, writer, (first, _second) = pipe
    _put_back(writer, first + first)
    # The first copy may be given (it is genuine, and in order); the replay never is.
    assert _read_until_refused(host, reader) in (b"", FIRST)


def test_reordered_records_are_refused(
    pipe: tuple[pal.Host, Handle, Handle, list[bytes]],
) -> None:
    host, reader, writer, (first, second) = pipe
    _put_back(writer, second + first)
    assert _read_until_refused(host, reader) == b""


def test_dropped_record_is_noticed(pipe: tuple[pal.Host, Handle, Handle, list[bytes]]) -> None:
    host, reader, writer, (_first, second) = pipe
    _put_back(writer, second)
    assert _read_until_refused(host, reader) == b""


@pytest.mark.parametrize("then_cut", [False, True])
def test_forged_plaintext_close_notify_is_not_an_end(
    pipe: tuple[pal.Host, Handle, Handle, list[bytes]], then_cut: bool
) -> None:
    """After the first record, the host forges a close_notify in the clear (and may cut
    the stream after it).  The reader must not take it for the writer's end."""
    host, reader, writer, (first, _second) = pipe
    _put_back(writer, first + PLAIN_CLOSE_NOTIFY)
    if then_cut:
        assert writer._sock is not None
        writer._sock.shutdown(socket.SHUT_WR)
    assert _read_until_refused(host, reader) in (b"", FIRST)
