"""TLS-protected pipes on the sgx host, checked from outside.

The test often plays the untrusted host: it opens a plain socket on a pipe's abstract name,
sees the bytes as they travel, and forges or cuts them.  Where it needs a TLS peer holding
the key it uses a TLS library directly (``OutsideTls``), not pylibos' own TLS code: the
other backend's library where both are installed.  Every test runs on each TLS backend
this interpreter has (``sgx`` is parametrised).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from pylibos import pal
from pylibos.pal import WAIT_READ, WAIT_WRITE, PalError, PalErrorCode

from ._pal_support import (
    RECORD_OVERHEAD,
    TLS_BACKENDS,
    WAIT_S,
    Background,
    abstract_name,
    hkdf_sha256,
    open_fds,
    outside_tls,
    read_exact,
    records,
    settle,
    unix_socket,
)

APPLICATION_DATA = 23
TLS_1_2 = 0x0303


@pytest.fixture(params=TLS_BACKENDS)
def sgx(request: pytest.FixtureRequest) -> Iterator[pal.Host]:
    host = pal.open_host("sgx", tls=request.param)
    assert host.tls == request.param
    yield host
    host.shutdown()


def fail_code(fn: Callable[..., object], *args: object) -> PalErrorCode:
    """The code of the PalError ``fn(*args)`` raises (and it must raise one)."""
    with pytest.raises(PalError) as info:
        fn(*args)
    return info.value.code


class Peer:
    """The far end of an sgx pipe, played by the test over a plain socket.

    ``accepting`` mode: the PAL's ``pipe.srv:`` listener accepts the test's socket, and the
    PAL end it returns is the TLS client.  ``connecting`` mode: the test listens on the
    abstract name and the PAL's ``pipe:`` end, the TLS server, connects to it.
    """

    def __init__(self, host: pal.Host, name: str, mode: str, *, nonblocking: bool = False) -> None:
        self.host = host
        psk = host.session_key(name)
        self._listener: socket.socket | None = None
        self.srv: pal.Handle | None = None
        if mode == "accepting":
            self.srv = host.stream_open(f"pipe.srv:{name}", nonblocking=nonblocking)
            self.sock = unix_socket()
            self.sock.connect(abstract_name(host, name))
            self.tls = outside_tls(host.tls or "", self.sock, psk, server=True)
            handshake = Background(self.tls.handshake)
            self.end = host.wait_for_client(self.srv)
            handshake.result()
        else:
            self._listener = unix_socket()
            self._listener.bind(abstract_name(host, name))
            self._listener.listen(1)
            self.end = host.stream_open(f"pipe:{name}", nonblocking=nonblocking)
            self.sock, _ = self._listener.accept()
            self.tls = outside_tls(host.tls or "", self.sock, psk, server=False)
            self.tls.handshake()

    def close(self) -> None:
        self.host.close(self.end)
        if self.srv is not None:
            self.host.close(self.srv)
        self.sock.close()
        if self._listener is not None:
            self._listener.close()


@pytest.fixture(params=["accepting", "connecting"])
def peer(request: pytest.FixtureRequest, sgx: pal.Host) -> Iterator[Peer]:
    peer = Peer(sgx, f"peer-{request.param}", request.param)
    yield peer
    peer.close()


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 64 * 1024, 1024 * 1024])
def test_round_trip_in_two_threads(sgx: pal.Host, size: int) -> None:
    accepted, connecting = sgx.create_pipe()
    data = secrets.token_bytes(size)
    back = bytes(reversed(data))
    reader = Background(lambda: read_exact(sgx, accepted, size))
    assert sgx.write(connecting, data) == size
    assert reader.result() == data
    reader = Background(lambda: read_exact(sgx, connecting, size))
    assert sgx.write(accepted, back) == size
    assert reader.result() == back
    # Nothing more than what was written arrived.
    assert sgx.streams_wait_events([accepted, connecting], [WAIT_READ] * 2, 0) == [0, 0]
    sgx.close(accepted)
    sgx.close(connecting)


def test_many_small_writes_arrive_whole_and_in_order(sgx: pal.Host) -> None:
    """Records of many sizes back to back, read with a reader that takes odd amounts:
    a record boundary anywhere in what one recv returns loses nothing."""
    accepted, connecting = sgx.create_pipe()
    pieces = [secrets.token_bytes(n) for n in (1, 7, 300, 5000, 16384, 16385, 9000, 2, 40000)]
    expected = b"".join(pieces) * 3

    def read_all() -> bytes:
        got = bytearray()
        step = 1
        while len(got) < len(expected):
            chunk = sgx.read(accepted, step)
            assert chunk
            got += chunk
            step = step * 7 % 9973 + 1
        return bytes(got)

    reader = Background(read_all)
    for _ in range(3):
        for piece in pieces:
            assert sgx.write(connecting, piece) == len(piece)
    assert reader.result() == expected
    sgx.close(accepted)
    sgx.close(connecting)


# -- what the host sees --------------------------------------------------------------------


def test_wire_carries_only_ciphertext(peer: Peer) -> None:
    host, secret = peer.host, b"the secret sentence, " * 100
    host.write(peer.end, secret)
    assert peer.tls.recv_exact(len(secret)) == secret
    wire = bytes(peer.tls.wire)
    assert b"secret" not in wire
    app = [r for r in records(wire) if r[0] == APPLICATION_DATA]
    assert app == [(APPLICATION_DATA, TLS_1_2, len(secret) + RECORD_OVERHEAD - 5)]


def test_direct_host_sends_plaintext_for_contrast() -> None:
    host = pal.open_host("direct")
    try:
        srv = host.stream_open("pipe.srv:plain")
        sock = unix_socket()
        sock.connect(abstract_name(host, "plain"))
        end = host.wait_for_client(srv)
        host.write(end, b"in the clear")
        assert sock.recv(100) == b"in the clear"
        sock.close()
    finally:
        host.shutdown()


def test_raw_pipe_on_sgx_is_plain_and_token_only(sgx: pal.Host) -> None:
    srv = sgx.stream_open("pipe.raw.srv:tok")
    sock = unix_socket()
    sock.connect(abstract_name(sgx, "tok", raw=True))
    end = sgx.wait_for_client(srv)
    assert not end.encrypted
    sgx.write(end, pal.EVENT_TOKEN)
    assert sock.recv(100) == pal.EVENT_TOKEN
    sock.close()
    sgx.close(end)
    sgx.close(srv)


# -- interop and keys ----------------------------------------------------------------------


def test_outside_tls_implementation_talks_to_both_ends(peer: Peer) -> None:
    host = peer.host
    assert peer.tls.version() == "TLSv1.2"
    assert peer.tls.cipher() == pal.CIPHERSUITE
    peer.tls.send(b"from outside")
    assert read_exact(host, peer.end, 12) == b"from outside"
    big = secrets.token_bytes(100_000)
    writer = Background(lambda: host.write(peer.end, big))
    assert peer.tls.recv_exact(len(big)) == big
    assert writer.result() == len(big)


def test_rfc5869_vector_checks_the_test_hkdf() -> None:
    okm = hkdf_sha256(b"\x0b" * 22, b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


@pytest.mark.parametrize("name", ["a", "event-17", "ünïcode", "n" * 80])
def test_session_key_is_hkdf_of_master_key_and_name(name: str) -> None:
    master = bytes(range(32))
    host = pal.open_host("sgx", master)
    try:
        key = host.session_key(name)
        assert key == hkdf_sha256(master, name.encode() + b"\0", 32)
        assert key != hkdf_sha256(master, name.encode(), 32), "the NUL is part of the info"
    finally:
        host.shutdown()


def test_session_keys_differ_by_name_and_master_key() -> None:
    one, two, other = (
        pal.open_host("sgx", b"1" * 32),
        pal.open_host("sgx", b"1" * 32),
        pal.open_host("sgx", b"2" * 32),
    )
    try:
        assert one.session_key("x") == two.session_key("x")
        assert one.session_key("x") != one.session_key("y")
        assert one.session_key("x") != other.session_key("x")
    finally:
        for host in (one, two, other):
            host.shutdown()


def test_outside_peer_with_the_wrong_key_is_refused_on_accept(sgx: pal.Host) -> None:
    srv = sgx.stream_open("pipe.srv:wrong")
    sock = unix_socket()
    sock.connect(abstract_name(sgx, "wrong"))
    peer = outside_tls(sgx.tls or "", sock, secrets.token_bytes(32), server=True)
    outside = Background(peer.handshake)
    assert fail_code(sgx.wait_for_client, srv) is PalErrorCode.AUTH_FAILED
    with pytest.raises(peer.errors):
        outside.result()
    sock.close()
    assert sgx.open_handles() == [srv]
    sgx.close(srv)


def test_outside_peer_with_the_wrong_key_is_refused_on_connect(sgx: pal.Host) -> None:
    listener = unix_socket()
    listener.bind(abstract_name(sgx, "wrong"))
    listener.listen(1)
    end = sgx.stream_open("pipe:wrong")
    sock, _ = listener.accept()
    peer = outside_tls(sgx.tls or "", sock, secrets.token_bytes(32), server=False)
    with pytest.raises(peer.errors):
        peer.handshake()
    assert fail_code(sgx.read, end, 1) is PalErrorCode.AUTH_FAILED
    assert fail_code(sgx.write, end, b"x") is PalErrorCode.AUTH_FAILED
    sock.close()
    listener.close()
    sgx.close(end)


# -- wrong key between two hosts -----------------------------------------------------------


@pytest.mark.parametrize("backend", TLS_BACKENDS)
def test_hosts_with_different_master_keys_cannot_talk(backend: str) -> None:
    instance = secrets.token_hex(6)
    listener = pal.open_host("sgx", b"L" * 32, instance=instance, tls=backend)
    connector = pal.open_host("sgx", b"C" * 32, instance=instance, tls=backend)
    try:
        for host in (listener, connector):
            host.handshake_timeout = 30.0  # so a failure by timeout could not pass for ours
        srv = listener.stream_open("pipe.srv:ipc")
        end = connector.stream_open("pipe:ipc")
        started = time.monotonic()
        assert fail_code(listener.wait_for_client, srv) is PalErrorCode.AUTH_FAILED
        assert fail_code(connector.read, end, 1) is PalErrorCode.AUTH_FAILED
        assert fail_code(connector.write, end, b"x") is PalErrorCode.AUTH_FAILED
        assert time.monotonic() - started < WAIT_S
        # The failed accept left nothing open on the listening host.
        assert listener.open_handles() == [srv]
    finally:
        listener.shutdown()
        connector.shutdown()


# -- tampering, truncation, hang-ups -------------------------------------------------------


# Bytes of the forged record: 0 content type, 2 version, 4 length (31 becomes 30, so the
# record ends early rather than waiting for a byte that never comes), 5 explicit nonce,
# 13 and 20 ciphertext, -1 the GCM tag.
@pytest.mark.parametrize("offset", [0, 2, 4, 5, 13, 20, -1], ids=lambda o: f"byte{o}")
def test_tampered_record_is_refused_for_good(peer: Peer, offset: int) -> None:
    host = peer.host
    peer.tls.send(b"honest")
    assert read_exact(host, peer.end, 6) == b"honest"
    record = bytearray(peer.tls.seal(b"forged?"))
    record[offset] ^= 0x01
    peer.sock.sendall(bytes(record))
    assert fail_code(host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED
    # A valid record behind it changes nothing: the handle stays failed.
    peer.tls.send(b"valid")
    for _ in range(3):
        assert fail_code(host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED
    assert fail_code(host.write, peer.end, b"x") is PalErrorCode.AUTH_FAILED


def test_failed_handle_is_reported_as_an_error_by_wait(peer: Peer) -> None:
    host = peer.host
    other = host.stream_open("eventfd:")
    try:
        record = bytearray(peer.tls.seal(b"forged"))
        record[-1] ^= 0x01
        peer.sock.sendall(bytes(record))
        assert fail_code(host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED
        polls = host.calls["poll"]
        ready = host.streams_wait_events(
            [other, peer.end], [pal.WAIT_READ, pal.WAIT_READ], 1_000_000
        )
        assert ready == [0, pal.WAIT_ERROR]
        assert host.calls["poll"] == polls  # known without asking the host
    finally:
        host.close(other)


def test_partial_record_gives_no_plaintext_to_a_nonblocking_read(sgx: pal.Host) -> None:
    peer = Peer(sgx, "nb-partial", "accepting", nonblocking=True)
    try:
        assert peer.end.nonblocking
        record = peer.tls.seal(b"in two parts")
        peer.sock.sendall(record[:-1])
        assert sgx.streams_wait_events([peer.end], [WAIT_READ], int(WAIT_S * 1e6)) == [WAIT_READ]
        assert fail_code(sgx.read, peer.end, 100) is PalErrorCode.TRYAGAIN
        peer.sock.sendall(record[-1:])
        assert sgx.streams_wait_events([peer.end], [WAIT_READ], int(WAIT_S * 1e6)) == [WAIT_READ]
        assert sgx.read(peer.end, 100) == b"in two parts"
    finally:
        peer.close()


def test_tampered_record_in_a_nonblocking_read(sgx: pal.Host) -> None:
    peer = Peer(sgx, "nb-tamper", "accepting", nonblocking=True)
    try:
        assert fail_code(sgx.read, peer.end, 10) is PalErrorCode.TRYAGAIN
        record = bytearray(peer.tls.seal(b"forged"))
        record[-3] ^= 0x80
        peer.sock.sendall(bytes(record))
        assert sgx.streams_wait_events([peer.end], [WAIT_READ], int(WAIT_S * 1e6)) == [WAIT_READ]
        assert fail_code(sgx.read, peer.end, 10) is PalErrorCode.AUTH_FAILED
        assert fail_code(sgx.read, peer.end, 10) is PalErrorCode.AUTH_FAILED
    finally:
        peer.close()


@pytest.mark.parametrize("cut", [1, 3, 5, 12, -1], ids=lambda c: f"cut{c}")
def test_truncated_record_then_close_is_an_error(peer: Peer, cut: int) -> None:
    host = peer.host
    record = peer.tls.seal(b"half of this never arrives")
    peer.sock.sendall(record[:cut])
    peer.sock.shutdown(socket.SHUT_WR)
    assert fail_code(host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED
    assert fail_code(host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED


def test_stream_cut_at_a_record_boundary_is_an_error(peer: Peer) -> None:
    # The host drops whatever followed "last words" and closes: without the peer's
    # close_notify that is a cut, not an end of stream.
    peer.tls.send(b"last words")
    peer.sock.shutdown(socket.SHUT_WR)
    assert read_exact(peer.host, peer.end, 10) == b"last words"
    assert fail_code(peer.host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED
    assert fail_code(peer.host.read, peer.end, 100) is PalErrorCode.AUTH_FAILED


def test_close_notify_is_end_of_stream(sgx: pal.Host) -> None:
    accepted, connecting = sgx.create_pipe()
    sgx.write(connecting, b"bye")
    sgx.close(connecting)  # sends close_notify
    assert read_exact(sgx, accepted, 3) == b"bye"
    assert sgx.read(accepted, 10) == b""
    assert sgx.read(accepted, 10) == b""
    sgx.close(accepted)


def test_peer_closes_mid_handshake_on_accept(sgx: pal.Host) -> None:
    sgx.handshake_timeout = 30.0
    srv = sgx.stream_open("pipe.srv:quitter")
    sock = unix_socket()
    sock.connect(abstract_name(sgx, "quitter"))
    started = time.monotonic()
    accepting = Background(lambda: sgx.wait_for_client(srv))
    hello = sock.recv(4096)
    assert records(hello)[0][0] == 22  # a handshake record: the ClientHello
    sock.close()
    with pytest.raises(PalError) as info:
        accepting.result()
    assert info.value.code is PalErrorCode.AUTH_FAILED
    assert "handshake" in info.value.message
    assert time.monotonic() - started < WAIT_S
    assert sgx.open_handles() == [srv]
    sgx.close(srv)


def test_peer_closes_mid_handshake_on_connect(sgx: pal.Host) -> None:
    sgx.handshake_timeout = 30.0
    listener = unix_socket()
    listener.bind(abstract_name(sgx, "hangup"))
    listener.listen(1)
    end = sgx.stream_open("pipe:hangup")
    sock, _ = listener.accept()
    started = time.monotonic()
    sock.sendall(b"\x16\x03\x03\x00")  # the start of a ClientHello, then nothing
    sock.close()
    listener.close()
    assert fail_code(sgx.read, end, 1) is PalErrorCode.AUTH_FAILED
    assert fail_code(sgx.write, end, b"x") is PalErrorCode.AUTH_FAILED
    assert time.monotonic() - started < WAIT_S
    sgx.close(end)
    assert sgx.live_threads() == []


def test_silent_client_times_out_the_accept(sgx: pal.Host) -> None:
    sgx.handshake_timeout = 0.2
    srv = sgx.stream_open("pipe.srv:mute")
    sock = unix_socket()
    sock.connect(abstract_name(sgx, "mute"))
    fds = open_fds()
    assert fail_code(sgx.wait_for_client, srv) is PalErrorCode.TIMEDOUT
    assert open_fds() == fds
    assert sgx.open_handles() == [srv]
    sock.close()
    sgx.close(srv)


def test_handshake_that_never_comes_times_out(sgx: pal.Host) -> None:
    sgx.handshake_timeout = 0.2
    srv = sgx.stream_open("pipe.srv:silent")
    end = sgx.stream_open("pipe:silent")  # nobody accepts, so nobody says hello
    assert fail_code(sgx.read, end, 1) is PalErrorCode.TIMEDOUT
    sgx.close(end)
    sgx.close(srv)
    assert sgx.live_threads() == []


def test_nonblocking_end_in_handshake_says_try_again(sgx: pal.Host) -> None:
    srv = sgx.stream_open("pipe.srv:later")
    end = sgx.stream_open("pipe:later", nonblocking=True)
    assert fail_code(sgx.read, end, 1) is PalErrorCode.TRYAGAIN
    assert fail_code(sgx.write, end, b"x") is PalErrorCode.TRYAGAIN
    accepted = sgx.wait_for_client(srv)
    sgx.write(accepted, b"now")
    settle(end)  # the helper thread may still be finishing its side of the handshake
    assert sgx.streams_wait_events([end], [WAIT_READ], int(WAIT_S * 1e6)) == [WAIT_READ]
    assert sgx.read(end, 3) == b"now"
    for handle in (accepted, end, srv):
        sgx.close(handle)


def test_wait_on_an_end_in_handshake_waits_for_the_handshake(sgx: pal.Host) -> None:
    srv = sgx.stream_open("pipe.srv:patient")
    end = sgx.stream_open("pipe:patient", nonblocking=True)
    try:
        # Nobody accepts yet: the handshake cannot finish, so the wait times out empty,
        # although the socket itself is writable.
        assert sgx.streams_wait_events([end], [WAIT_WRITE], 50_000) == [0]
        accepted = Background(lambda: sgx.wait_for_client(srv))
        assert sgx.streams_wait_events([end], [WAIT_WRITE], int(WAIT_S * 1e6)) == [WAIT_WRITE]
        assert sgx.write(end, b"ok") == 2  # the handshake is over: no TRYAGAIN
        acc = accepted.result()
        assert read_exact(sgx, acc, 2) == b"ok"
        sgx.close(acc)
    finally:
        for handle in (end, srv):
            sgx.close(handle)


# -- buffered plaintext and polling --------------------------------------------------------


def test_buffered_plaintext_is_readable_without_a_host_call(sgx: pal.Host) -> None:
    accepted, connecting = sgx.create_pipe()
    sgx.write(connecting, b"ab")
    assert sgx.read(accepted, 1) == b"a"
    polls = sgx.calls["poll"]
    total = sgx.calls_total
    assert sgx.streams_wait_events([accepted], [WAIT_READ], 0) == [WAIT_READ]
    assert sgx.streams_wait_events([accepted], [WAIT_READ], None) == [WAIT_READ]
    assert (sgx.calls["poll"], sgx.calls_total) == (polls, total)
    recvs = sgx.calls["recv"]
    assert sgx.read(accepted, 1) == b"b"
    assert sgx.calls["recv"] == recvs, "the byte was already decrypted"
    assert sgx.streams_wait_events([accepted], [WAIT_READ], 0) == [0]
    assert sgx.calls["poll"] == polls + 1
    sgx.close(accepted)
    sgx.close(connecting)


# -- nonblocking writes --------------------------------------------------------------------


def test_short_write_must_be_retried_with_the_same_bytes(sgx: pal.Host) -> None:
    accepted, connecting = sgx.create_pipe(nonblocking=True)
    settle(connecting)
    chunk = secrets.token_bytes(64 * 1024)
    written = 0
    while True:
        try:
            n = sgx.write(accepted, chunk)
        except PalError as exc:
            assert exc.code is PalErrorCode.TRYAGAIN
            n = 0
        written += n
        if n < len(chunk):
            break
    # The record that did not fit is sealed and waits; other bytes cannot jump the queue.
    with pytest.raises(PalError) as info:
        sgx.write(accepted, b"something else")
    assert info.value.code is PalErrorCode.INVAL
    assert "retried" in info.value.message
    # Once the reader drains, the retry with the right bytes goes through, the parked
    # record first.
    drained = 0
    with contextlib.suppress(PalError):
        while True:
            drained += len(sgx.read(connecting, 1 << 16))
    assert drained == written
    rest = chunk[n:]
    assert sgx.write(accepted, rest) > 0
    assert read_exact(sgx, connecting, 100) == rest[:100]
    for handle in (accepted, connecting):
        sgx.close(handle)
