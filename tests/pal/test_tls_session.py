"""``TlsSession``, the sans-IO TLS-PSK wrapper the sgx host builds its pipes on, tested
with two sessions talking in memory: every test runs for each TLS backend available, and
the two-session tests for each pairing of client and server backend, so where both
libraries are installed each one is also checked against the other."""

from __future__ import annotations

import queue
import random
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylibos.pal._tls import MAX_PLAINTEXT, TlsFailure, TlsSession
from pylibos.pal._tls_backends import session_class

from ._pal_support import RECORD_OVERHEAD, TLS_BACKENDS, WAIT_S, records

PSK = bytes(range(32))
ALERT = 21
APPLICATION_DATA = 23


class Link:
    """Two sessions' handshake over in-memory queues.

    The server's bytes go out one flight at a time: whatever it sends between two waits
    for the client travels as one chunk, and so do any records it seals right after its
    handshake ends, together with its Finished message.
    """

    def __init__(self, client: TlsSession, server: TlsSession) -> None:
        self.client, self.server = client, server
        self.to_client: queue.Queue[bytes] = queue.Queue()
        self.to_server: queue.Queue[bytes] = queue.Queue()
        self._flight = bytearray()
        self.client_eof = False

    def _server_send(self, data: bytes) -> None:
        self._flight += data

    def _flush(self) -> None:
        if self._flight:
            self.to_client.put(bytes(self._flight))
            self._flight.clear()

    def _server_recv(self) -> bytes:
        self._flush()
        return self.to_server.get(timeout=WAIT_S)

    def _client_recv(self) -> bytes:
        if self.client_eof and self.to_client.empty():
            return b""
        return self.to_client.get(timeout=WAIT_S)

    def run(self, *, early: bytes = b"") -> tuple[BaseException | None, BaseException | None]:
        """Handshake both ends; returns what each raised (None when it succeeded)."""
        errors: list[BaseException | None] = [None, None]

        def serve() -> None:
            try:
                self.server.handshake(self._server_send, self._server_recv)
                if early:
                    self._flight += self.server.seal(early)[1]
            except BaseException as exc:
                errors[1] = exc
            finally:
                self._flush()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            self.client.handshake(self.to_server.put, self._client_recv)
        except BaseException as exc:
            errors[0] = exc
        thread.join(WAIT_S * 2)
        assert not thread.is_alive()
        return errors[0], errors[1]


each_backend = pytest.mark.parametrize("backend", TLS_BACKENDS)
each_pairing = pytest.mark.parametrize(
    ("client_tls", "server_tls"),
    [(c, s) for c in TLS_BACKENDS for s in TLS_BACKENDS],
    ids=lambda name: str(name),
)


def pair(
    client_tls: str, server_tls: str, psk: bytes = PSK, server_psk: bytes | None = None
) -> tuple[TlsSession, TlsSession]:
    """A client session of one backend and a server session of another, not connected."""
    client = session_class(client_tls)(psk, server=False)
    server = session_class(server_tls)(psk if server_psk is None else server_psk, server=True)
    return client, server


def connected(client_tls: str, server_tls: str) -> tuple[TlsSession, TlsSession]:
    client, server = pair(client_tls, server_tls)
    assert not client.established and not server.established
    assert Link(client, server).run() == (None, None)
    assert client.established and server.established
    return client, server


def seal_all(session: TlsSession, data: bytes) -> list[bytes]:
    """Every record ``data`` becomes, one seal() per record."""
    out, view = [], memoryview(data)
    while view:
        n, record = session.seal(view)
        assert 0 < n <= MAX_PLAINTEXT
        out.append(record)
        view = view[n:]
    return out


# -- construction and handshake ------------------------------------------------------------


@each_backend
@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_psk_must_be_32_bytes(backend: str, size: int) -> None:
    with pytest.raises(ValueError, match=f"PSK must be 32 bytes, got {size}"):
        session_class(backend)(b"k" * size, server=True)


@each_pairing
def test_handshake_then_both_directions(client_tls: str, server_tls: str) -> None:
    client, server = connected(client_tls, server_tls)
    for sender, receiver in ((client, server), (server, client)):
        (record,) = seal_all(sender, b"hello")
        assert records(record) == [(APPLICATION_DATA, 0x0303, 5 + RECORD_OVERHEAD - 5)]
        receiver.feed(record)
        assert receiver.buffered == 5
        assert receiver.take(100) == b"hello"
        assert receiver.buffered == 0


@each_pairing
def test_records_right_behind_the_finished_message_are_kept(
    client_tls: str, server_tls: str
) -> None:
    client, server = pair(client_tls, server_tls)
    assert Link(client, server).run(early=b"right behind") == (None, None)
    assert client.buffered == 12
    assert client.take(100) == b"right behind"


@each_pairing
def test_different_keys_fail_on_both_sides(client_tls: str, server_tls: str) -> None:
    client, server = pair(client_tls, server_tls, server_psk=bytes(32))
    client_error, server_error = Link(client, server).run()
    assert isinstance(client_error, TlsFailure)
    assert isinstance(server_error, TlsFailure)
    assert "handshake failed" in str(server_error)


@each_pairing
def test_peer_gone_during_handshake(client_tls: str, server_tls: str) -> None:
    client, server = pair(client_tls, server_tls)
    sent: list[bytes] = []
    with pytest.raises(TlsFailure, match="peer closed the connection during the handshake"):
        client.handshake(sent.append, lambda: b"")
    assert sent, "the ClientHello went out before the wait"
    assert not server.established


# -- records -------------------------------------------------------------------------------


@each_pairing
def test_seal_takes_one_record_at_most(client_tls: str, server_tls: str) -> None:
    client, server = connected(client_tls, server_tls)
    data = bytes(range(256)) * 160  # 40 KiB
    n, record = client.seal(data)
    assert n == MAX_PLAINTEXT
    assert records(record) == [(APPLICATION_DATA, 0x0303, MAX_PLAINTEXT + RECORD_OVERHEAD - 5)]
    sealed = [record, *seal_all(client, data[n:])]
    assert [len(r) - RECORD_OVERHEAD for r in sealed] == [16384, 16384, 40960 - 32768]
    server.feed(b"".join(sealed))
    assert server.take(1 << 20) == data


@each_pairing
def test_one_huge_feed_does_not_overflow(client_tls: str, server_tls: str) -> None:
    client, server = connected(client_tls, server_tls)
    data = random.Random(1).randbytes(200 * 1024)
    wire = b"".join(seal_all(client, data))
    assert len(wire) > 200 * 1024
    server.feed(wire)
    assert server.buffered == len(data)
    assert server.take(1 << 20) == data


@each_pairing
def test_short_records_between_long_ones_all_arrive(client_tls: str, server_tls: str) -> None:
    """The bug python-mbedtls' read() invites: a record followed by part of another."""
    client, server = connected(client_tls, server_tls)
    sizes = [16384, 16384, 7232, 16384, 16384, 7232, 1, 3, 16384]
    pieces = [bytes([i]) * size for i, size in enumerate(sizes)]
    wire = b"".join(record for piece in pieces for record in seal_all(client, piece))
    server.feed(wire)
    assert server.take(1 << 20) == b"".join(pieces)


@each_pairing
def test_take_hands_out_plaintext_in_order(client_tls: str, server_tls: str) -> None:
    client, server = connected(client_tls, server_tls)
    server.feed(b"".join(seal_all(client, b"0123456789")))
    assert server.take(3) == b"012"
    assert server.buffered == 7
    assert server.take(0) == b""
    assert server.take(100) == b"3456789"
    assert server.take(100) == b""


@each_pairing
def test_mid_record_tracks_partial_records(client_tls: str, server_tls: str) -> None:
    client, server = connected(client_tls, server_tls)
    (record,) = seal_all(client, b"abc")
    assert not server.mid_record
    for cut in (1, 3, 5, 6, len(record) - 1):
        server.feed(record[:cut])
        assert server.mid_record
        assert server.buffered == 0, "no plaintext before its record is whole"
        server.feed(record[cut:])
        assert not server.mid_record
        assert server.take(10) == b"abc"
        (record,) = seal_all(client, b"abc")


@each_pairing
def test_close_notify_ends_the_stream_after_the_data(client_tls: str, server_tls: str) -> None:
    client, server = connected(client_tls, server_tls)
    wire = b"".join(seal_all(client, b"last")) + client.close_notify()
    assert records(wire)[-1][0] == ALERT
    server.feed(wire)
    assert server.peer_closed
    assert server.take(10) == b"last"


@each_pairing
def test_close_notify_both_ways_is_an_end_on_both_sides(client_tls: str, server_tls: str) -> None:
    """Each end sends its close_notify before it has the other's: neither is a failure."""
    client, server = connected(client_tls, server_tls)
    from_server, from_client = server.close_notify(), client.close_notify()
    assert from_server and from_client
    server.feed(from_client)
    client.feed(from_server)
    assert server.peer_closed and client.peer_closed
    assert (server.buffered, client.buffered) == (0, 0)


@each_pairing
@pytest.mark.parametrize("offset", [0, 1, 4, 5, 12, 13, 20, -1], ids=lambda o: f"byte{o}")
def test_tampered_record_raises_and_yields_nothing(
    client_tls: str, server_tls: str, offset: int
) -> None:
    client, server = connected(client_tls, server_tls)
    record = bytearray(seal_all(client, b"forged payload")[0])
    record[offset] ^= 0x04
    with pytest.raises(TlsFailure, match="record rejected"):
        server.feed(bytes(record))
    assert server.buffered == 0


# -- property: any plaintext chunking, any ciphertext split --------------------------------


@each_pairing
@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40_000), min_size=1, max_size=6),
    from_client=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_round_trip_for_any_chunking_and_split(
    client_tls: str,
    server_tls: str,
    sizes: list[int],
    from_client: bool,
    seed: int,
    data: st.DataObject,
) -> None:
    client, server = connected(client_tls, server_tls)
    sender, receiver = (client, server) if from_client else (server, client)
    rng = random.Random(seed)
    chunks = [rng.randbytes(size) for size in sizes]
    # Per record: where it ends in the ciphertext, and how much plaintext it carries.
    ends, plain_at = [0], [0]
    wire = bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            n, record = sender.seal(view)
            view = view[n:]
            wire += record
            ends.append(len(wire))
            plain_at.append(plain_at[-1] + n)
    plaintext = b"".join(chunks)
    cuts = data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=12).map(sorted))
    received = bytearray()
    start = 0
    for stop in [*cuts, len(wire)]:
        receiver.feed(bytes(wire[start:stop]))
        start = stop
        whole = max(i for i, end in enumerate(ends) if end <= stop)
        assert receiver.mid_record == (stop != ends[whole])
        received += receiver.take(receiver.buffered)
        # Exactly the plaintext of the whole records so far: nothing early, nothing held.
        assert received == plaintext[: plain_at[whole]]
    assert received == plaintext


# -- many sessions at once -----------------------------------------------------------------


@each_pairing
def test_concurrent_handshakes_each_use_their_own_key(client_tls: str, server_tls: str) -> None:
    """Handshakes running at once on many threads never borrow each other's key: pairs
    with matching keys all connect, and every pair whose keys differ fails."""
    keys = [bytes([i]) * 32 for i in range(8)]
    outcomes: dict[int, tuple[BaseException | None, BaseException | None]] = {}
    received: dict[int, bytes] = {}
    start = threading.Barrier(len(keys))

    def one(i: int) -> None:
        # Odd pairs: the server holds the next pair's key.
        server_key = keys[(i + 1) % len(keys)] if i % 2 else keys[i]
        client, server = pair(client_tls, server_tls, keys[i], server_key)
        start.wait(WAIT_S)
        outcomes[i] = Link(client, server).run()
        if i % 2 == 0:
            (record,) = seal_all(client, keys[i])
            server.feed(record)
            received[i] = server.take(32)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 3)
        assert not t.is_alive()
    assert sorted(outcomes) == list(range(len(keys)))
    for i, (client_error, server_error) in outcomes.items():
        if i % 2 == 0:
            assert (client_error, server_error) == (None, None)
            assert received[i] == keys[i]
        else:
            assert isinstance(client_error, TlsFailure) and isinstance(server_error, TlsFailure)


@pytest.mark.skipif("openssl" not in TLS_BACKENDS, reason="no OpenSSL TLS-PSK before 3.13")
def test_openssl_server_never_resumes_a_session_of_another_pipe() -> None:
    """A session that ended cleanly, offered again by a client holding another key, gets
    a full handshake (and fails on the key), never a resumption that skips the PSK."""
    if sys.version_info >= (3, 13):  # for the type checker; the mark skips older Pythons
        from pylibos.pal._tls_openssl import OpenSslSession, _client_context

        client, server = connected("openssl", "openssl")
        client.feed(server.close_notify())
        server.feed(client.close_notify())
        assert isinstance(client, OpenSslSession)
        offered = client._obj.session
        assert offered is not None
        for server_key in (PSK, bytes(32)):
            thief = OpenSslSession(bytes([7]) * 32, server=False)
            thief._obj = _client_context().wrap_bio(
                thief._incoming, thief._outgoing, server_side=False, session=offered
            )
            client_error, server_error = Link(thief, OpenSslSession(server_key, server=True)).run()
            assert isinstance(client_error, TlsFailure) and isinstance(server_error, TlsFailure)
