"""The PAL stream contract, written once and run on every host kind.

What differs between kinds is asserted through ``host.kind`` in the one place it differs
(whether pipe ends are encrypted, whether a helper thread runs), never by a second copy of
a test.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from pylibos import pal
from pylibos.pal import EVENT_TOKEN, WAIT_HANG_UP, WAIT_READ, WAIT_WRITE, PalError, PalErrorCode

from ._pal_support import KINDS, WAIT_S, Background, open_fds, read_exact, settle

SECOND = 1_000_000  # microseconds


def closing(host: pal.Host, *handles: pal.Handle) -> None:
    for handle in handles:
        host.close(handle)


class TestOpen:
    def test_named_pipe(self, host: pal.Host) -> None:
        srv = host.stream_open("pipe.srv:named")
        connecting = host.stream_open("pipe:named")
        accepted = host.wait_for_client(srv)
        assert (srv.kind, connecting.kind, accepted.kind) == (
            pal.HandleKind.PIPE_SRV,
            pal.HandleKind.PIPE,
            pal.HandleKind.PIPE,
        )
        assert accepted.uri == connecting.uri == "pipe:named"
        host.write(connecting, b"to the listener")
        assert read_exact(host, accepted, 15) == b"to the listener"
        host.write(accepted, b"and back")
        assert read_exact(host, connecting, 8) == b"and back"
        closing(host, accepted, connecting, srv)

    def test_raw_named_pipe(self, host: pal.Host) -> None:
        srv = host.stream_open("pipe.raw.srv:named")
        connecting = host.stream_open("pipe.raw:named")
        accepted = host.wait_for_client(srv)
        assert accepted.uri == "pipe.raw:named"
        assert accepted.raw and connecting.raw
        assert host.write(connecting, EVENT_TOKEN) == 1
        assert host.read(accepted, 16) == EVENT_TOKEN
        assert host.write(accepted, EVENT_TOKEN) == 1
        assert host.read(connecting, 16) == EVENT_TOKEN
        closing(host, accepted, connecting, srv)

    @pytest.mark.parametrize("raw", [False, True])
    def test_create_pipe(self, host: pal.Host, raw: bool) -> None:
        accepted, connecting = host.create_pipe(raw=raw)
        # The listener create_pipe used is gone: only the two ends remain.
        assert set(host.open_handles()) == {accepted, connecting}
        payload = EVENT_TOKEN if raw else b"payload"
        host.write(connecting, payload)
        assert read_exact(host, accepted, len(payload)) == payload
        host.write(accepted, payload)
        assert read_exact(host, connecting, len(payload)) == payload
        closing(host, accepted, connecting)
        assert host.open_handles() == []

    def test_eventfd(self, host: pal.Host) -> None:
        efd = host.stream_open("eventfd:")
        assert efd.kind is pal.HandleKind.EVENTFD and efd.raw
        assert host.streams_wait_events([efd], [WAIT_READ], 0) == [0]
        assert host.write(efd, EVENT_TOKEN) == 1
        assert host.write(efd, EVENT_TOKEN) == 1
        assert host.streams_wait_events([efd], [WAIT_READ], 0) == [WAIT_READ]
        got = host.read(efd, 8)
        assert got == EVENT_TOKEN * 2
        # A read takes the whole count: the event is clear again.
        assert host.streams_wait_events([efd], [WAIT_READ], 0) == [0]
        host.close(efd)

    @pytest.mark.parametrize("raw", [False, True])
    def test_encrypted_only_on_sgx_protected_pipes(self, host: pal.Host, raw: bool) -> None:
        accepted, connecting = host.create_pipe(raw=raw)
        srv = host.stream_open("pipe.srv:enc")
        efd = host.stream_open("eventfd:")
        expected = host.kind == "sgx" and not raw
        assert accepted.encrypted is expected
        assert connecting.encrypted is expected
        assert not srv.encrypted and not efd.encrypted
        closing(host, accepted, connecting, srv, efd)


class TestNamesPerHost:
    @pytest.mark.parametrize("other_kind", KINDS)
    def test_same_name_on_two_hosts_does_not_collide(self, host: pal.Host, other_kind: str) -> None:
        other = pal.open_host(other_kind)
        try:
            srv1 = host.stream_open("pipe.srv:shared")
            srv2 = other.stream_open("pipe.srv:shared")
            c1 = host.stream_open("pipe:shared")
            c2 = other.stream_open("pipe:shared")
            a1 = host.wait_for_client(srv1)
            a2 = other.wait_for_client(srv2)
            host.write(c1, b"one")
            other.write(c2, b"two")
            assert read_exact(host, a1, 3) == b"one"
            assert read_exact(other, a2, 3) == b"two"
            # Each listener got exactly its own host's client.
            assert host.streams_wait_events([a1], [WAIT_READ], 0) == [0]
            assert other.streams_wait_events([a2], [WAIT_READ], 0) == [0]
        finally:
            other.shutdown()

    @pytest.mark.parametrize("prefix", ["pipe", "pipe.raw"])
    def test_connect_to_a_name_only_another_host_listens_on(
        self, host: pal.Host, prefix: str
    ) -> None:
        other = pal.open_host(host.kind)
        try:
            other.stream_open(f"{prefix}.srv:theirs")
            with pytest.raises(PalError) as info:
                host.stream_open(f"{prefix}:theirs")
            assert info.value.code is PalErrorCode.STREAMNOTEXIST
        finally:
            other.shutdown()

    def test_same_instance_is_the_same_namespace(self, host: pal.Host) -> None:
        """Hosts meant to talk (IPC) share an instance and a key, and then do meet."""
        key = secrets.token_bytes(32)
        instance = secrets.token_hex(6)
        one = pal.open_host(host.kind, key, instance=instance)
        two = pal.open_host(host.kind, key, instance=instance)
        try:
            srv = one.stream_open("pipe.srv:ipc")
            connecting = two.stream_open("pipe:ipc")
            accepted = one.wait_for_client(srv)
            two.write(connecting, b"across hosts")
            assert read_exact(one, accepted, 12) == b"across hosts"
        finally:
            one.shutdown()
            two.shutdown()


class TestWaitEvents:
    def test_readable_after_write(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe()
        assert host.streams_wait_events([accepted], [WAIT_READ], 0) == [0]
        host.write(connecting, b"x")
        assert host.streams_wait_events([accepted], [WAIT_READ], SECOND) == [WAIT_READ]
        assert host.read(accepted, 1) == b"x"
        closing(host, accepted, connecting)

    def test_timeout_returns_zeros(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe(raw=True)
        efd = host.stream_open("eventfd:")
        for timeout in (0, 20_000):
            started = time.monotonic()
            ready = host.streams_wait_events([accepted, connecting, efd], [WAIT_READ] * 3, timeout)
            assert ready == [0, 0, 0]
            assert time.monotonic() - started >= timeout / SECOND
        closing(host, accepted, connecting, efd)

    def test_only_the_ready_handle_is_flagged(self, host: pal.Host) -> None:
        a1, c1 = host.create_pipe(raw=True)
        a2, c2 = host.create_pipe(raw=True)
        efd = host.stream_open("eventfd:")
        host.write(c2, EVENT_TOKEN)
        assert host.streams_wait_events([a1, a2, efd], [WAIT_READ] * 3, SECOND) == [
            0,
            WAIT_READ,
            0,
        ]
        host.write(efd, EVENT_TOKEN)
        assert host.streams_wait_events([a1, efd], [WAIT_READ] * 2, SECOND) == [0, WAIT_READ]
        closing(host, a1, c1, a2, c2, efd)

    def test_waiter_wakes_when_written(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe(raw=True)
        waiting = Background(
            lambda: host.streams_wait_events([accepted], [WAIT_READ], int(WAIT_S * SECOND))
        )
        host.write(connecting, EVENT_TOKEN)
        assert waiting.result() == [WAIT_READ]
        closing(host, accepted, connecting)

    def test_write_ready_on_connected_pipe(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe()
        both = WAIT_READ | WAIT_WRITE
        assert host.streams_wait_events([accepted, connecting], [both, both], SECOND) == [
            WAIT_WRITE,
            WAIT_WRITE,
        ]
        closing(host, accepted, connecting)

    @pytest.mark.parametrize("how", ["close", "delete"])
    @pytest.mark.parametrize("raw", [False, True])
    def test_hang_up_seen_after_peer_goes(self, host: pal.Host, how: str, raw: bool) -> None:
        accepted, connecting = host.create_pipe(raw=raw)
        if not raw:
            # The connecting end finishes its handshake on a helper after the accepting
            # end has; a close before that is a cut stream, not this test's end.
            host.write(connecting, b"x")
            assert host.read(accepted, 1) == b"x"
        getattr(host, how)(connecting)
        (ready,) = host.streams_wait_events([accepted], [WAIT_READ], SECOND)
        assert ready & (WAIT_HANG_UP | WAIT_READ), ready
        assert host.read(accepted, 16) == b""
        closing(host, accepted, connecting)

    def test_delete_ends_both_directions(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe()
        host.delete(accepted)
        assert host.read(accepted, 1) == b""
        assert host.read(connecting, 1) == b""
        with pytest.raises(PalError) as info:
            host.write(accepted, b"x")
        assert info.value.code is PalErrorCode.CONNFAILED_PIPE
        closing(host, accepted, connecting)

    def test_same_descriptor_twice_for_read_and_write(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe(raw=True)
        host.write(connecting, EVENT_TOKEN)
        ready = host.streams_wait_events([accepted, accepted], [WAIT_READ, WAIT_WRITE], SECOND)
        assert ready == [WAIT_READ, WAIT_WRITE]
        closing(host, accepted, connecting)


class TestEventOnlyChannels:
    """Raw pipes and eventfds carry wakeups and nothing else."""

    @pytest.mark.parametrize("payload", [b"", b"\x00", b"\x02", b"secret", EVENT_TOKEN * 2])
    @pytest.mark.parametrize("channel", ["raw", "eventfd"])
    def test_anything_but_the_token_is_refused(
        self, host: pal.Host, payload: bytes, channel: str
    ) -> None:
        if channel == "raw":
            accepted, connecting = host.create_pipe(raw=True)
            writer, reader, handles = connecting, accepted, [accepted, connecting]
        else:
            efd = host.stream_open("eventfd:")
            writer, reader, handles = efd, efd, [efd]
        before = host.calls.copy()
        with pytest.raises(PalError) as info:
            host.write(writer, payload)
        assert info.value.code is PalErrorCode.DENIED
        assert "only the event token" in info.value.message
        assert host.calls == before, "a refused write must not reach the host"
        assert host.streams_wait_events([reader], [WAIT_READ], 0) == [0]
        host.write(writer, bytearray(EVENT_TOKEN))
        assert host.streams_wait_events([reader], [WAIT_READ], 0) == [WAIT_READ]
        closing(host, *handles)


class TestNonblocking:
    @pytest.mark.parametrize("raw", [False, True])
    def test_read_on_empty_pipe(self, host: pal.Host, raw: bool) -> None:
        accepted, connecting = host.create_pipe(raw=raw, nonblocking=True)
        for end in (accepted, connecting):
            assert end.nonblocking
            with pytest.raises(PalError) as info:
                host.read(end, 1)
            assert info.value.code is PalErrorCode.TRYAGAIN
        closing(host, accepted, connecting)

    def test_read_on_unsignalled_eventfd(self, host: pal.Host) -> None:
        efd = host.stream_open("eventfd:", nonblocking=True)
        with pytest.raises(PalError) as info:
            host.read(efd, 1)
        assert info.value.code is PalErrorCode.TRYAGAIN
        host.write(efd, EVENT_TOKEN)
        assert host.read(efd, 1) == EVENT_TOKEN
        host.close(efd)

    @pytest.mark.parametrize("prefix", ["pipe", "pipe.raw"])
    def test_wait_for_client_without_client(self, host: pal.Host, prefix: str) -> None:
        srv = host.stream_open(f"{prefix}.srv:nb", nonblocking=True)
        with pytest.raises(PalError) as info:
            host.wait_for_client(srv)
        assert info.value.code is PalErrorCode.TRYAGAIN
        connecting = host.stream_open(f"{prefix}:nb")
        accepted = host.wait_for_client(srv)
        assert accepted.nonblocking
        payload = EVENT_TOKEN if prefix == "pipe.raw" else b"late"
        host.write(connecting, payload)
        assert host.streams_wait_events([accepted], [WAIT_READ], SECOND) == [WAIT_READ]
        assert read_exact(host, accepted, len(payload)) == payload
        closing(host, accepted, connecting, srv)

    def test_full_pipe_loses_nothing(self, host: pal.Host) -> None:
        """Fill a nonblocking pipe until it takes no more, drain the other end: exactly
        the bytes the writes reported arrive, in order, with no further write."""
        accepted, connecting = host.create_pipe(nonblocking=True)
        settle(accepted, connecting)
        chunk = secrets.token_bytes(40_000)
        written = bytearray()
        while True:
            try:
                n = host.write(connecting, chunk)
            except PalError as exc:
                assert exc.code is PalErrorCode.TRYAGAIN
                break
            assert 0 < n <= len(chunk)
            written += chunk[:n]
            if n < len(chunk):
                break
        received = bytearray()
        while True:
            try:
                got = host.read(accepted, 1 << 16)
            except PalError as exc:
                assert exc.code is PalErrorCode.TRYAGAIN
                break
            assert got, "unexpected end of stream"
            received += got
        assert len(written) > 0
        assert received == written
        closing(host, accepted, connecting)

    def test_stream_through_full_pipe(self, host: pal.Host) -> None:
        """A nonblocking writer that retries the rest after a short write, waiting for
        WAIT_WRITE, delivers every byte exactly once."""
        accepted, connecting = host.create_pipe(nonblocking=True)
        data = secrets.token_bytes(1 << 20)

        def drain() -> bytes:
            got = bytearray()
            while len(got) < len(data):
                ready = host.streams_wait_events([accepted], [WAIT_READ], int(WAIT_S * SECOND))
                assert ready != [0], "reader starved"
                try:
                    got += host.read(accepted, 1 << 16)
                except PalError as exc:
                    assert exc.code is PalErrorCode.TRYAGAIN
            return bytes(got)

        reader = Background(drain)
        pos = 0
        while pos < len(data):
            try:
                pos += host.write(connecting, data[pos:])
            except PalError as exc:
                assert exc.code is PalErrorCode.TRYAGAIN
                ready = host.streams_wait_events([connecting], [WAIT_WRITE], int(WAIT_S * SECOND))
                assert ready == [WAIT_WRITE], "writer starved"
        assert reader.result() == data
        closing(host, accepted, connecting)


class TestHostCalls:
    def test_pipe_pair(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe()
        calls = host.calls.copy()
        assert (calls["listen"], calls["connect"], calls["accept"]) == (1, 1, 1)
        assert calls["close"] == 1  # the listener
        if host.kind == "sgx":
            assert calls["clone_thread"] == 1
            assert calls["send"] > 0 and calls["recv"] > 0, "the handshake moves bytes"
        else:
            assert calls == {"listen": 1, "connect": 1, "accept": 1, "close": 1}
        closing(host, accepted, connecting)

    def test_raw_pair_makes_no_thread_and_no_handshake(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe(raw=True)
        assert host.calls == {"listen": 1, "connect": 1, "accept": 1, "close": 1}
        closing(host, accepted, connecting)
        assert host.calls["close"] == 3

    def test_eventfd(self, host: pal.Host) -> None:
        efd = host.stream_open("eventfd:")
        assert host.calls == {"eventfd": 1}
        host.write(efd, EVENT_TOKEN)
        host.streams_wait_events([efd], [WAIT_READ], 0)
        host.read(efd, 1)
        host.close(efd)
        assert host.calls == {"eventfd": 1, "write": 1, "poll": 1, "read": 1, "close": 1}

    def test_one_poll_per_wait_whatever_the_number_of_handles(self, host: pal.Host) -> None:
        handles = [host.stream_open("eventfd:") for _ in range(5)]
        host.streams_wait_events(handles, [WAIT_READ] * 5, 0)
        assert host.calls["poll"] == 1
        closing(host, *handles)

    def test_calls_total_sums_the_counter(self, host: pal.Host) -> None:
        accepted, connecting = host.create_pipe()
        host.write(connecting, b"x")
        host.read(accepted, 1)
        closing(host, accepted, connecting)
        assert host.calls_total == sum(host.calls.values()) > 0


class TestNothingLeftBehind:
    @pytest.mark.parametrize("prefix", ["pipe", "pipe.raw"])
    def test_name_is_free_after_close(self, host: pal.Host, prefix: str) -> None:
        fds = open_fds()
        srv = host.stream_open(f"{prefix}.srv:reuse")
        connecting = host.stream_open(f"{prefix}:reuse")
        accepted = host.wait_for_client(srv)
        closing(host, accepted, connecting, srv)
        assert open_fds() == fds
        again = host.stream_open(f"{prefix}.srv:reuse")
        host.close(again)

    @pytest.mark.parametrize("raw", [False, True])
    def test_pairs_leave_no_fds_or_threads(self, host: pal.Host, raw: bool) -> None:
        fds = open_fds()
        threads = set(threading.enumerate())
        for _ in range(5):
            accepted, connecting = host.create_pipe(raw=raw)
            closing(host, accepted, connecting)
        # close() of a connecting end joins its handshake helper before returning.
        assert host.live_threads() == []
        assert set(threading.enumerate()) <= threads
        assert open_fds() == fds
        assert host.open_handles() == []

    def test_close_of_an_end_nobody_accepts_is_bounded(self, host: pal.Host) -> None:
        host.handshake_timeout = 30.0
        srv = host.stream_open("pipe.srv:unanswered")
        connecting = host.stream_open("pipe:unanswered")
        started = time.monotonic()
        host.close(connecting)
        assert time.monotonic() - started < 2.0, "close waited for the handshake to time out"
        assert host.live_threads() == []
        host.close(srv)

    def test_shutdown_closes_everything(self, host: pal.Host) -> None:
        fds = open_fds()
        host.create_pipe()
        host.create_pipe(raw=True)
        host.stream_open("pipe.srv:left-open")
        host.stream_open("pipe:left-open")  # never accepted
        host.stream_open("eventfd:")
        host.shutdown()
        assert host.open_handles() == []
        assert host.live_threads() == []
        assert open_fds() == fds
