"""Edge watches: a host epoll in edge-triggered mode behind the LibOS's ``EPOLLET``, and
the one descriptor number the PAL shows (``descriptor_number``)."""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator

import pytest

from libos_support import MakePair, Pipe
from pylibos import pal
from pylibos.pal import (
    WAIT_ERROR,
    WAIT_HANG_UP,
    WAIT_READ,
    WAIT_WRITE,
    Handle,
    HandleKind,
    PalError,
    PalErrorCode,
)

from ._pal_support import KINDS


@pytest.fixture(params=KINDS)
def host(request: pytest.FixtureRequest) -> Iterator[pal.Host]:
    with pal.open_host(request.param) as h:
        yield h
        assert h.open_handles() == []


def _watch(host: pal.Host) -> Handle:
    return host.edge_watch_open()


Watched = tuple[Handle, Handle, socket.socket]


@pytest.fixture
def watched(host: pal.Host, pair: tuple[socket.socket, socket.socket]) -> Iterator[Watched]:
    """An edge watch, the handle of a socket it can watch, and that socket's peer; both
    handles are closed at the end."""
    a, b = pair
    watch = _watch(host)
    fd = host.stream_from_fd(a.fileno())
    yield watch, fd, b
    host.close(fd)
    host.close(watch)


def test_open_counts_one_call_and_shows_a_real_epoll(host: pal.Host) -> None:
    before = host.calls["epoll_create"]
    watch = _watch(host)
    assert host.calls["epoll_create"] == before + 1
    assert watch.kind is HandleKind.EDGES
    number = host.descriptor_number(watch)
    assert os.readlink(f"/proc/self/fd/{number}") == "anon_inode:[eventpoll]"
    assert not os.get_inheritable(number)
    host.close(watch)
    with pytest.raises(OSError):
        os.fstat(number)  # closing the handle closed the host descriptor
    with pytest.raises(PalError) as info:
        host.descriptor_number(watch)
    assert info.value.code is PalErrorCode.BADHANDLE


def test_edges_carry_full_readiness_and_repeat_on_new_data(
    host: pal.Host, watched: Watched
) -> None:
    watch, fd, b = watched
    host.edge_watch_add(watch, fd, WAIT_READ | WAIT_WRITE)
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_WRITE)]  # ready when added
    assert host.edge_watch_take(watch, 8) == []
    assert host.streams_wait_events([watch], [WAIT_READ], 0) == [0]
    b.send(b"x")
    assert host.streams_wait_events([watch], [WAIT_READ], 5_000_000) == [WAIT_READ]
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_READ | WAIT_WRITE)]
    b.send(b"y")  # more data, the first still unread: a new edge
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_READ | WAIT_WRITE)]
    b.close()
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_READ | WAIT_WRITE | WAIT_HANG_UP)]
    host.edge_watch_remove(watch, fd)


def test_add_twice_modifies_and_oneshot_queues_once(host: pal.Host, watched: Watched) -> None:
    watch, fd, b = watched
    host.edge_watch_add(watch, fd, WAIT_READ, oneshot=True)
    assert host.edge_watch_take(watch, 8) == []
    b.send(b"x")
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_READ)]
    b.send(b"y")
    assert host.edge_watch_take(watch, 8) == []  # one shot, spent
    host.edge_watch_add(watch, fd, WAIT_READ | WAIT_WRITE)  # re-arms, as EPOLL_CTL_MOD
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_READ | WAIT_WRITE)]


def test_take_leaves_the_rest_queued(host: pal.Host, socketpairs: MakePair) -> None:
    pairs = [socketpairs() for _ in range(3)]
    watch = _watch(host)
    handles = [host.stream_from_fd(a.fileno()) for a, _b in pairs]
    try:
        for h in handles:
            host.edge_watch_add(watch, h, WAIT_WRITE)
        first = host.edge_watch_take(watch, 2)
        rest = host.edge_watch_take(watch, 2)
        assert len(first) == 2 and len(rest) == 1
        assert {h for h, _ in first + rest} == set(handles)
    finally:
        for h in handles:
            host.close(h)
        host.close(watch)


def test_remove_of_a_closed_descriptor_is_no_error(
    host: pal.Host, pair: tuple[socket.socket, socket.socket], watched: Watched
) -> None:
    watch, fd, b = watched
    host.edge_watch_add(watch, fd, WAIT_READ)
    b.send(b"x")  # queued ...
    pair[0].close()  # ... and dropped with the descriptor
    assert host.edge_watch_take(watch, 8) == []
    host.edge_watch_remove(watch, fd)
    host.edge_watch_remove(watch, fd)  # twice is harmless


def test_a_descriptor_the_host_queues_unasked_is_left_out(host: pal.Host, watched: Watched) -> None:
    """Play the host: put a descriptor of its own choosing into the watch, level-triggered
    so it would keep the watch readable for ever.  The take reports only what the caller
    watches, and takes the stranger out, so a waiter is not woken by it again."""
    watch, fd, b = watched
    host.edge_watch_add(watch, fd, WAIT_READ)
    assert watch._epoll is not None
    watch._epoll.register(b.fileno(), select.EPOLLOUT)  # forged, always ready
    assert host.streams_wait_events([watch], [WAIT_READ], 0) == [WAIT_READ]
    assert host.edge_watch_take(watch, 8) == []
    assert host.streams_wait_events([watch], [WAIT_READ], 0) == [0]
    with pytest.raises(FileNotFoundError):
        watch._epoll.unregister(b.fileno())
    b.send(b"x")
    assert host.edge_watch_take(watch, 8) == [(fd, WAIT_READ)]


def test_calls_on_a_closed_watch_are_bad_handle(
    host: pal.Host, pair: tuple[socket.socket, socket.socket]
) -> None:
    watch = _watch(host)
    fd = host.stream_from_fd(pair[0].fileno())
    host.close(watch)
    for call in (
        lambda: host.edge_watch_add(watch, fd, WAIT_READ),
        lambda: host.edge_watch_remove(watch, fd),
        lambda: host.edge_watch_take(watch, 1),
    ):
        with pytest.raises(PalError) as info:
            call()
        assert info.value.code is PalErrorCode.BADHANDLE
    host.close(fd)


def test_add_wants_a_watch_and_a_descriptor_handle(host: pal.Host) -> None:
    watch = _watch(host)
    r, w = host.create_pipe(raw=True)
    with pytest.raises(PalError):
        host.edge_watch_add(r, watch, WAIT_READ)
    with pytest.raises(PalError):
        host.edge_watch_add(watch, r, WAIT_READ)  # a PAL pipe is not the program's
    for h in (r, w, watch):
        host.close(h)


def test_error_on_a_pipe_whose_reader_went(host: pal.Host, pipe: Pipe) -> None:
    watch = _watch(host)
    fd = host.stream_from_fd(pipe.w)
    try:
        host.edge_watch_add(watch, fd, WAIT_WRITE)
        assert host.edge_watch_take(watch, 8) == [(fd, WAIT_WRITE)]
        pipe.close("r")
        assert host.edge_watch_take(watch, 8) == [(fd, WAIT_WRITE | WAIT_ERROR)]
    finally:
        host.close(fd)
        host.close(watch)


def test_shutdown_closes_watches() -> None:
    host = pal.open_host("direct")
    watch = _watch(host)
    number = host.descriptor_number(watch)
    host.shutdown()
    assert watch.closed
    with pytest.raises(OSError):
        os.fstat(number)
