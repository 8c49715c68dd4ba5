"""The LibOS epoll against ``select.epoll``: one contract run on both, then what only the
LibOS has (waking waiters, forged wakeups, races with unregister and close)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from libos_support import (
    BOUND,
    CONFIG_IDS,
    CONFIGS,
    MakePair,
    Pipe,
    booted,
    inject,
    open_fds,
    spying,
)
from pylibos.libos import Epoll, LibOS, LibOSThread
from pylibos.pal import Handle

IN, OUT, PRI = select.EPOLLIN, select.EPOLLOUT, select.EPOLLPRI
ERR, HUP, RDHUP = select.EPOLLERR, select.EPOLLHUP, select.EPOLLRDHUP
ET, ONESHOT = select.EPOLLET, select.EPOLLONESHOT


class EpollLike(Protocol):
    """What ``select.epoll`` and ``pylibos.libos.Epoll`` both offer."""

    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def register(self, fd: Any, eventmask: int = ...) -> None: ...
    def modify(self, fd: Any, eventmask: int) -> None: ...
    def unregister(self, fd: Any) -> None: ...
    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any, /) -> None: ...


MakeEpoll = Callable[..., EpollLike]

IMPLS = [None, *CONFIGS]
IMPL_IDS = ["select.epoll", *(f"libos-{c}" for c in CONFIG_IDS)]


@pytest.fixture(params=IMPLS, ids=IMPL_IDS)
def make_epoll(request: pytest.FixtureRequest) -> Iterator[MakeEpoll]:
    """Makes epoll objects of one implementation; closes them all afterwards."""
    made: list[EpollLike] = []
    with contextlib.ExitStack() as stack:
        factory: Callable[..., EpollLike] = select.epoll
        if request.param is not None:
            kind, events = request.param
            factory = stack.enter_context(booted(kind, events)).epoll

        def make(*args: Any) -> EpollLike:
            ep = factory(*args)
            made.append(ep)
            return ep

        yield make
        for ep in made:
            ep.close()


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    yield client, accepted
    client.close()
    accepted.close()


def closed_fd() -> int:
    """A descriptor number that is not open (until something else takes it)."""
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


Pair = tuple[socket.socket, socket.socket]


# -- the contract: select.epoll and the LibOS's behave the same ---------------------------


def test_register_and_poll_readable(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN)
    assert ep.poll(0) == []
    b.send(b"x")
    assert ep.poll(BOUND) == [(a.fileno(), IN)]
    assert ep.poll(-1) == [(a.fileno(), IN)]  # level-triggered: still there
    assert ep.poll(None) == [(a.fileno(), IN)]
    a.recv(1)
    assert ep.poll(0) == []


def test_register_by_number_and_default_mask(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a.fileno())
    assert ep.poll(0) == [(a.fileno(), OUT)]
    b.send(b"x")
    assert ep.poll(0) == [(a.fileno(), IN | OUT)]


def test_modify_and_unregister(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, _b = pair
    ep = make_epoll()
    ep.register(a, IN)
    assert ep.poll(0) == []
    ep.modify(a, OUT)
    assert ep.poll(0) == [(a.fileno(), OUT)]
    ep.unregister(a)
    assert ep.poll(0) == []
    ep.register(a, OUT)  # can come back
    assert ep.poll(0) == [(a.fileno(), OUT)]


def test_poll_timeout(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, _b = pair
    ep = make_epoll()
    ep.register(a, IN)
    t0 = time.monotonic()
    assert ep.poll(0.05) == []
    assert time.monotonic() - t0 >= 0.045  # select.epoll rounds to whole milliseconds


def test_maxevents(make_epoll: MakeEpoll, socketpairs: MakePair) -> None:
    pairs = [socketpairs() for _ in range(3)]
    ep = make_epoll()
    for a, _b in pairs:
        ep.register(a, OUT)
    assert len(ep.poll(0, maxevents=2)) == 2
    assert len(ep.poll(0, 1)) == 1
    assert sorted(ep.poll(0)) == sorted((a.fileno(), OUT) for a, _b in pairs)


def test_hang_up_on_socket(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN)
    b.close()
    assert ep.poll(BOUND) == [(a.fileno(), IN | HUP)]


@pytest.mark.parametrize(
    ("masks", "closed", "before", "after"),
    [
        pytest.param({"r": 0, "w": 0}, "r", [], [("w", ERR)], id="error_always_reported"),
        pytest.param({"r": IN}, "w", [], [("r", HUP)], id="hang_up_on_pipe"),
        pytest.param({"w": OUT}, "r", [("w", OUT)], [("w", OUT | ERR)], id="error_with_out"),
    ],
)
def test_pipe_end_closed(
    make_epoll: MakeEpoll,
    pipe: Pipe,
    masks: dict[str, int],
    closed: str,
    before: list[tuple[str, int]],
    after: list[tuple[str, int]],
) -> None:
    """The other end of a pipe closes: a hang-up or an error, reported even where the
    mask asks for neither."""
    fds = {"r": pipe.r, "w": pipe.w}
    ep = make_epoll()
    for end, mask in masks.items():
        ep.register(fds[end], mask)
    assert ep.poll(0) == [(fds[end], events) for end, events in before]
    pipe.close(closed)
    assert ep.poll(BOUND) == [(fds[end], events) for end, events in after]


def test_rdhup(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN | RDHUP)
    assert ep.poll(0) == []
    b.shutdown(socket.SHUT_WR)
    assert ep.poll(BOUND) == [(a.fileno(), IN | RDHUP)]


def test_pri(make_epoll: MakeEpoll, tcp_pair: Pair) -> None:
    client, server = tcp_pair
    ep = make_epoll()
    ep.register(server, PRI)
    assert ep.poll(0) == []
    client.send(b"!", socket.MSG_OOB)
    assert ep.poll(BOUND) == [(server.fileno(), PRI)]
    assert server.recv(1, socket.MSG_OOB) == b"!"
    assert ep.poll(0) == []


def test_edge_triggered(make_epoll: MakeEpoll, pair: Pair) -> None:
    """Reported once per edge: the program drains until EAGAIN and polls again."""
    a, b = pair
    a.setblocking(False)
    ep = make_epoll()
    ep.register(a, IN | ET)
    b.send(b"one")
    assert ep.poll(BOUND) == [(a.fileno(), IN)]
    assert ep.poll(0) == []  # still readable, but no new edge
    assert a.recv(100) == b"one"
    with pytest.raises(BlockingIOError):
        a.recv(100)
    assert ep.poll(0) == []
    b.send(b"two")
    assert ep.poll(BOUND) == [(a.fileno(), IN)]
    assert ep.poll(0) == []


def test_edge_triggered_hang_up_is_reported_once(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN | ET)
    b.close()
    assert ep.poll(BOUND) == [(a.fileno(), IN | HUP)]
    assert ep.poll(0.01) == []


def test_edge_triggered_reports_everything_ready(make_epoll: MakeEpoll, pair: Pair) -> None:
    """Linux reports the full readiness at each edge, and new data on an unread socket is
    a new edge (CPython's test_epoll relies on both)."""
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN | OUT | ET)
    assert ep.poll(BOUND) == [(a.fileno(), OUT)]
    assert ep.poll(0) == []
    b.send(b"one")
    assert ep.poll(BOUND) == [(a.fileno(), IN | OUT)]
    assert ep.poll(0) == []
    b.send(b"two")  # "one" still unread
    assert ep.poll(BOUND) == [(a.fileno(), IN | OUT)]
    assert ep.poll(0) == []
    ep.modify(a, IN | ET)  # modify re-arms: what is ready is reported again
    assert ep.poll(0) == [(a.fileno(), IN)]
    ep.modify(a, IN)  # and back to level-triggered
    assert ep.poll(0) == [(a.fileno(), IN)]
    assert ep.poll(0) == [(a.fileno(), IN)]


def test_edge_triggered_oneshot(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN | ET | ONESHOT)
    b.send(b"x")
    assert ep.poll(BOUND) == [(a.fileno(), IN)]
    b.send(b"y")
    assert ep.poll(0.01) == []
    ep.modify(a, IN | ET | ONESHOT)
    assert ep.poll(0) == [(a.fileno(), IN)]


def test_edge_and_level_entries_together(make_epoll: MakeEpoll, socketpairs: MakePair) -> None:
    pairs = [socketpairs() for _ in range(4)]
    ep = make_epoll()
    for i, (a, b) in enumerate(pairs):
        ep.register(a, IN | (ET if i % 2 else 0))
        b.send(b"x")
    assert sorted(ep.poll(BOUND)) == sorted((a.fileno(), IN) for a, _b in pairs)
    assert sorted(ep.poll(0)) == sorted((a.fileno(), IN) for a, _b in pairs[0::2])
    got = ep.poll(0, maxevents=1) + ep.poll(0, maxevents=1)
    assert len(got) == 2


def test_oneshot(make_epoll: MakeEpoll, pair: Pair) -> None:
    a, b = pair
    ep = make_epoll()
    ep.register(a, IN | ONESHOT)
    b.send(b"x")
    assert ep.poll(BOUND) == [(a.fileno(), IN)]
    assert ep.poll(0) == []  # disabled, though still readable
    with pytest.raises(FileExistsError):
        ep.register(a, IN)  # but still registered
    ep.modify(a, IN | ONESHOT)
    assert ep.poll(0) == [(a.fileno(), IN)]
    assert ep.poll(0) == []


def test_close_closed_fileno_context_manager(make_epoll: MakeEpoll) -> None:
    ep = make_epoll()
    assert not ep.closed
    assert isinstance(ep.fileno(), int) and ep.fileno() >= 0
    with ep as entered:
        assert entered is ep
    assert ep.closed
    with pytest.raises(ValueError, match="closed epoll"):
        ep.fileno()
    ep.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed epoll"), ep:
        pass


@pytest.mark.parametrize(
    "call",
    [
        lambda ep, a: ep.register(a),
        lambda ep, a: ep.modify(a, IN),
        lambda ep, a: ep.unregister(a),
        lambda ep, a: ep.poll(0),
        lambda ep, a: ep.poll(0, 0),
        lambda ep, a: ep.fileno(),
    ],
    ids=["register", "modify", "unregister", "poll", "poll-maxevents0", "fileno"],
)
def test_closed_object_is_value_error(
    make_epoll: MakeEpoll, pair: Pair, call: Callable[[EpollLike, socket.socket], object]
) -> None:
    ep = make_epoll()
    ep.register(pair[0], IN)
    ep.close()
    with pytest.raises(ValueError, match="closed epoll"):
        call(ep, pair[0])


def test_double_register(make_epoll: MakeEpoll, pair: Pair) -> None:
    ep = make_epoll()
    ep.register(pair[0], IN)
    with pytest.raises(FileExistsError) as info:
        ep.register(pair[0].fileno(), OUT)
    assert info.value.errno == errno.EEXIST


def _call(ep: EpollLike, op: str, fd: Any) -> None:
    """``ep.register(fd, IN)``, ``ep.modify(fd, IN)`` or ``ep.unregister(fd)``."""
    if op == "unregister":
        ep.unregister(fd)
    else:
        getattr(ep, op)(fd, IN)


@pytest.mark.parametrize("op", ["modify", "unregister"])
def test_unknown_fd(make_epoll: MakeEpoll, pair: Pair, op: str) -> None:
    ep = make_epoll()
    with pytest.raises(FileNotFoundError) as info:
        _call(ep, op, pair[0])
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize("op", ["register", "modify", "unregister"])
def test_negative_fd(make_epoll: MakeEpoll, op: str) -> None:
    ep = make_epoll()
    with pytest.raises(ValueError, match="negative"):
        _call(ep, op, -1)


@pytest.mark.parametrize("op", ["register", "modify", "unregister"])
def test_closed_fd_is_ebadf(make_epoll: MakeEpoll, op: str) -> None:
    ep = make_epoll()
    fd = closed_fd()
    with pytest.raises(OSError) as info:
        _call(ep, op, fd)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("op", ["register", "modify", "unregister"])
def test_registered_then_closed_fd_is_ebadf(make_epoll: MakeEpoll, op: str) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    ep = make_epoll()
    ep.register(a, OUT)
    a.close()
    try:
        with pytest.raises(OSError) as info:
            _call(ep, op, fd)
        assert info.value.errno == errno.EBADF
    finally:
        b.close()


@pytest.mark.parametrize("op", ["register", "modify", "unregister"])
def test_regular_file_is_permission_error(make_epoll: MakeEpoll, op: str) -> None:
    ep = make_epoll()
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as info:
            _call(ep, op, f)
        assert info.value.errno == errno.EPERM


@pytest.mark.parametrize("maxevents", [0, -2])
def test_bad_maxevents(make_epoll: MakeEpoll, maxevents: int) -> None:
    ep = make_epoll()
    with pytest.raises(ValueError, match="maxevents"):
        ep.poll(0, maxevents)


def test_bad_timeout(make_epoll: MakeEpoll) -> None:
    ep = make_epoll()
    with pytest.raises(TypeError, match="timeout must be an integer or None"):
        ep.poll("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        ep.poll(float("nan"))


def test_not_a_descriptor(make_epoll: MakeEpoll) -> None:
    ep = make_epoll()
    with pytest.raises(TypeError, match="fileno"):
        ep.register("0", IN)


@pytest.mark.parametrize("sizehint", [0, -2])
def test_bad_sizehint(make_epoll: MakeEpoll, sizehint: int) -> None:
    with pytest.raises(ValueError, match="sizehint"):
        make_epoll(sizehint)


def test_flags(make_epoll: MakeEpoll) -> None:
    make_epoll(-1, select.EPOLL_CLOEXEC).close()
    with pytest.raises(OSError):
        make_epoll(-1, 1)


# -- fileno and fromfd ---------------------------------------------------------------


def test_fileno_is_an_epoll_descriptor(make_epoll: MakeEpoll) -> None:
    ep = make_epoll()
    number = ep.fileno()
    assert os.readlink(f"/proc/self/fd/{number}") == "anon_inode:[eventpoll]"
    assert os.get_inheritable(number) is False
    ep.close()
    with pytest.raises(OSError):
        os.fstat(number)


def _fromfd(ep: EpollLike, fd: int) -> EpollLike:
    fromfd: Callable[[int], EpollLike] = type(ep).fromfd  # type: ignore[attr-defined]
    return fromfd(fd)


@pytest.mark.parametrize("closer", ["original", "copy"])
def test_fromfd_shares_the_epoll(make_epoll: MakeEpoll, pair: Pair, closer: str) -> None:
    """``fromfd`` wraps the same epoll, no duplicate: closing either object closes it, and
    the other, not itself closed, then fails with EBADF."""
    a, b = pair
    ep = make_epoll()
    number = ep.fileno()
    copy = _fromfd(ep, number)
    assert copy is not ep and copy.fileno() == number
    copy.register(a, OUT)
    assert ep.poll(0) == [(a.fileno(), OUT)]
    ep.modify(a, IN)
    b.send(b"x")
    assert copy.poll(BOUND) == [(a.fileno(), IN)]
    gone, left = (ep, copy) if closer == "original" else (copy, ep)
    gone.close()
    assert gone.closed and not left.closed
    assert left.fileno() == number
    for call in (
        lambda: left.poll(0),
        lambda: left.register(b, IN),
        lambda: left.modify(a, IN),
        lambda: left.unregister(a),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
    left.close()
    assert left.closed
    with pytest.raises(ValueError, match="closed epoll"):
        left.poll(0)


def test_fromfd_argument(make_epoll: MakeEpoll) -> None:
    ep = make_epoll()
    with pytest.raises(TypeError):
        _fromfd(ep, "3")  # type: ignore[arg-type]


def test_libos_fromfd_of_a_negative_number() -> None:
    """CPython's ``select.epoll.fromfd(-1)`` makes a new epoll (its constructor's "no
    descriptor yet" value leaks through); ``Epoll.fromfd`` has no LibOS to make one on,
    and refuses."""
    with pytest.raises(ValueError, match="negative"):
        Epoll.fromfd(-1)


def test_libos_fromfd_of_a_number_that_is_no_libos_epoll(pair: Pair) -> None:
    """Natively ``poll`` on the copy fails with EBADF for a closed number and EINVAL for
    one open as something else; the LibOS acts only on its own epolls and says EBADF."""
    with booted("direct") as libos:
        for number in (pair[0].fileno(), closed_fd()):
            copy = Epoll.fromfd(number)
            assert not copy.closed and copy.fileno() == number
            with pytest.raises(OSError) as info:
                copy.poll(0)
            assert info.value.errno == errno.EBADF
            copy.close()
        native = select.epoll()
        try:
            with pytest.raises(OSError) as info:
                Epoll.fromfd(native.fileno()).register(pair[0], IN)
            assert info.value.errno == errno.EBADF
        finally:
            native.close()
        assert libos.host.open_handles()  # the LibOS's own, untouched


def test_libos_fromfd_copy_never_reaches_a_later_epoll(pair: Pair) -> None:
    """After its epoll is closed, a copy does not act on a new epoll that got the same
    number (natively it would)."""
    with booted("direct") as libos:
        ep = libos.epoll()
        number = ep.fileno()
        copy = Epoll.fromfd(number)
        ep.close()
        later = libos.epoll()
        assert later.fileno() == number  # the lowest free descriptor, reused
        later.register(pair[0], OUT)
        with pytest.raises(OSError) as info:
            copy.poll(0)
        assert info.value.errno == errno.EBADF
        assert Epoll.fromfd(number).poll(0) == [(pair[0].fileno(), OUT)]
        copy.close()
        assert later.poll(0) == [(pair[0].fileno(), OUT)]
        later.close()


def test_libos_epoll_is_built_from_a_host_and_an_event_source(pair: Pair) -> None:
    """``Epoll`` needs only the PAL host and the calling thread's event."""
    with booted("direct") as libos:
        event = libos.create_pollable_event()
        ep = Epoll(libos.host, lambda: event)
        ep.register(pair[0], OUT)
        assert ep.poll(0) == [(pair[0].fileno(), OUT)]
        ep.close()
        event.destroy()


# -- only the LibOS: waking waiters, forged wakeups, races ---------------------------------


class Waiter:
    """A LibOS thread calling ``ep.poll(timeout)`` once."""

    def __init__(
        self,
        libos: LibOS,
        ep: Epoll,
        timeout: float | None = BOUND,
        hold: threading.Event | None = None,
    ) -> None:
        """``hold`` (if given) keeps the thread, and so its event, alive after ``done``
        until it is set: the host may still write to that event."""
        self.result: list[tuple[int, int]] | None = None
        self.error: BaseException | None = None
        self.elapsed = 0.0
        self.done = threading.Event()

        def run() -> None:
            t0 = time.monotonic()
            try:
                self.result = ep.poll(timeout)
            except BaseException as exc:
                self.error = exc
            self.elapsed = time.monotonic() - t0
            self.done.set()
            if hold is not None:
                hold.wait(BOUND)

        self.thread = libos.clone(run, name="waiter")

    def finish(self) -> list[tuple[int, int]]:
        assert self.thread.join(BOUND)
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


def _asleep_on(spy_calls: list[tuple[int, list[Handle]]], waiter: Waiter, n: int) -> bool:
    """The waiter's thread has gone to the host with ``n`` handles (its event + n - 1)."""
    ident = waiter.thread._pal.ident if waiter.thread._pal else None
    return any(tid == ident and len(handles) == n for tid, handles in spy_calls)


def _at_least(n: int, thread: LibOSThread, calls: list[tuple[int, list[Handle]]]) -> bool:
    """``thread`` has gone to the host ``n`` times."""
    ident = thread._pal.ident if thread._pal else None
    return sum(1 for tid, _ in calls if tid == ident) >= n


def test_register_wakes_a_waiter(libos: LibOS, pair: Pair) -> None:
    a, b = pair
    ep = libos.epoll()
    with spying(libos.host) as spy:
        waiter = Waiter(libos, ep)
        assert spy.wait_for(lambda calls: _asleep_on(calls, waiter, 1))
        b.send(b"x")
        ep.register(a, IN)
        assert waiter.finish() == [(a.fileno(), IN)]
    ep.close()


def test_modify_wakes_a_waiter(libos: LibOS, pair: Pair) -> None:
    a, _b = pair
    ep = libos.epoll()
    ep.register(a, IN)
    with spying(libos.host) as spy:
        waiter = Waiter(libos, ep)
        assert spy.wait_for(lambda calls: _asleep_on(calls, waiter, 2))
        ep.modify(a, OUT)
        assert waiter.finish() == [(a.fileno(), OUT)]
    ep.close()


def test_unregister_wakes_a_waiter(libos: LibOS, pair: Pair, socketpairs: MakePair) -> None:
    """After unregister the waiter stops watching the descriptor: it becomes readable and
    the waiter reports only the one registered next."""
    a, b = pair
    c, d = socketpairs()
    ep = libos.epoll()
    ep.register(a, IN)
    with spying(libos.host) as spy:
        waiter = Waiter(libos, ep)
        assert spy.wait_for(lambda calls: _asleep_on(calls, waiter, 2))
        ep.unregister(a)
        assert spy.wait_for(lambda calls: _asleep_on(calls, waiter, 1))
        b.send(b"x")
        d.send(b"y")
        ep.register(c, IN)
        assert waiter.finish() == [(c.fileno(), IN)]
    ep.close()


@pytest.mark.parametrize("how", ["close", "shutdown"])
def test_close_and_shutdown_wake_a_waiter(libos: LibOS, pair: Pair, how: str) -> None:
    ep = libos.epoll()
    ep.register(pair[0], IN)
    with spying(libos.host) as spy:
        waiter = Waiter(libos, ep, timeout=None)
        assert spy.wait_for(lambda calls: _asleep_on(calls, waiter, 2))
        if how == "close":
            ep.close()
        else:
            libos.shutdown()
            # shutdown closed the epoll first, so the thread ended before it returned.
            assert waiter.done.is_set() and waiter.thread.join(0)
        assert waiter.finish() == []


def test_thread_the_libos_did_not_create_can_poll(libos: LibOS, pair: Pair) -> None:
    a, b = pair
    ep = libos.epoll()
    ep.register(a, IN)
    b.send(b"x")
    got: list[list[tuple[int, int]]] = []
    t = threading.Thread(target=lambda: got.append(ep.poll(BOUND)))
    t.start()
    t.join(BOUND)
    assert not t.is_alive()
    assert got == [[(a.fileno(), IN)]]
    ep.close()


def test_waiter_event_set_from_outside_is_no_event(libos: LibOS, pair: Pair) -> None:
    """Setting the waiter's event (as any wakeup would) returns nothing early."""
    a, _b = pair
    ep = libos.epoll()
    ep.register(a, IN)
    waiter = Waiter(libos, ep, timeout=0.15)
    while not waiter.done.wait(0.005):
        waiter.thread.event.set()
    assert waiter.finish() == []
    assert waiter.elapsed >= 0.15
    ep.close()


def test_forged_wakeups_never_make_poll_lie(injectable_libos: LibOS, pair: Pair) -> None:
    a, b = pair
    libos = injectable_libos
    ep = libos.epoll()
    ep.register(a, IN)
    # With a timeout: nothing is there, so [] and not before the timeout.  The thread
    # stays (its event open) until the last forged wakeup is in.
    hold = threading.Event()
    waiter = Waiter(libos, ep, timeout=0.15, hold=hold)
    while not waiter.done.wait(0.005):
        inject(waiter.thread.event, 3)
    hold.set()
    assert waiter.finish() == []
    assert waiter.elapsed >= 0.15
    # Without one: only the real event ends the wait.
    really = threading.Event()
    seen: list[tuple[list[tuple[int, int]], bool]] = []

    def run() -> None:
        got = ep.poll(None)
        seen.append((got, really.is_set()))

    t = libos.clone(run)
    with spying(libos.host) as spy:
        for i in range(1, 6):
            inject(t.event, 2)
            # The waiter wakes, drains, and goes back to the host (its own calls: the
            # workers' rechecks are theirs).
            assert spy.wait_for(functools.partial(_at_least, i, t))
            assert not seen
    really.set()
    b.send(b"x")
    assert t.join(BOUND)
    assert seen == [([(a.fileno(), IN)], True)]
    ep.close()


@pytest.mark.parametrize("edge", [False, True], ids=["level", "edge"])
def test_unregister_racing_a_waiter(
    libos: LibOS, pair: Pair, edge: bool, socketpairs: MakePair
) -> None:
    """``unregister`` closes the entry's handle after the waiter read the list and before
    it reached the host: the waiter reads the list again instead of failing.  An edge
    queued for an entry that is unregistered before the waiter takes it is not reported."""
    a, b = pair
    c, d = socketpairs()
    ep = libos.epoll()
    ep.register(a, IN | (ET if edge else 0))
    ep.register(c, IN)
    if edge:
        b.send(b"x")
    d.send(b"y")
    with spying(libos.host) as spy:

        def race(handles: list[Handle]) -> None:
            # Level-triggered: once the waiter waits on a's handle (the third).
            if edge or len(handles) == 3:
                spy.before = None
                ep.unregister(a)

        spy.before = race
        assert ep.poll(BOUND) == [(c.fileno(), IN)]
    ep.close()


def test_close_racing_a_waiter(libos: LibOS, pair: Pair) -> None:
    ep = libos.epoll()
    ep.register(pair[0], IN)
    with spying(libos.host) as spy:

        def race(handles: list[Handle]) -> None:
            spy.before = None
            ep.close()

        spy.before = race
        assert ep.poll(BOUND) == []


def test_close_racing_an_edge_take(libos: LibOS, pair: Pair) -> None:
    a, b = pair
    ep = libos.epoll()
    ep.register(a, IN | ET)
    b.send(b"x")
    real = libos.host.edge_watch_take

    def take(watch: Handle, max_events: int) -> list[tuple[Handle, int]]:
        ep.close()
        return real(watch, max_events)

    libos.host.edge_watch_take = take  # type: ignore[method-assign]
    try:
        assert ep.poll(BOUND) == []
    finally:
        del libos.host.edge_watch_take


@pytest.mark.parametrize("where", ["edge_watch_add", "stream_from_fd"])
def test_interrupt_inside_register_leaves_nothing(pair: Pair, where: str) -> None:
    """A KeyboardInterrupt from the host call inside ``register`` leaves no entry and no
    handle behind; registering again works."""
    a, b = pair
    with booted("direct") as libos:
        ep = libos.epoll()
        real = getattr(libos.host, where)
        calls = 0

        def interrupted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        setattr(libos.host, where, interrupted)
        handles = set(libos.host.open_handles())
        try:
            with pytest.raises(KeyboardInterrupt):
                ep.register(a, IN | ET)
        finally:
            delattr(libos.host, where)
        assert set(libos.host.open_handles()) == handles
        with pytest.raises(FileNotFoundError):
            ep.unregister(a)
        ep.register(a, IN | ET)
        b.send(b"x")
        assert ep.poll(BOUND) == [(a.fileno(), IN)]
        ep.close()


def test_host_forging_into_the_edge_watch_neither_lies_nor_spins(
    pair: Pair, socketpairs: MakePair
) -> None:
    """Play the host: put an always-ready descriptor of its own into the epoll's edge
    watch.  ``poll`` reports nothing for it, times out as asked, and wakes for it once,
    not over and over."""
    a, b = pair
    _c, d = socketpairs()
    with booted("sgx", "raw") as libos:
        ep = libos.epoll()
        ep.register(a, IN | ET)
        assert ep._inst is not None
        host_epoll = ep._inst.watch._epoll
        assert host_epoll is not None
        host_epoll.register(d.fileno(), select.EPOLLOUT)  # forged, level-triggered
        before = libos.host.calls.copy()
        t0 = time.monotonic()
        assert ep.poll(0.2) == []
        assert time.monotonic() - t0 >= 0.19
        spent = libos.host.calls - before
        assert spent["poll"] <= 3 and spent["epoll_wait"] <= 2, spent
        b.send(b"x")
        assert ep.poll(BOUND) == [(a.fileno(), IN)]
        ep.close()


def test_edge_triggered_host_calls(pair: Pair) -> None:
    """What edges cost: one epoll_ctl per change of an edge-triggered entry, one
    epoll_wait per wake with edges queued; a level-triggered poll uses neither."""
    a, b = pair
    with booted("direct") as libos:
        calls = libos.host.calls
        ep = libos.epoll()
        ep.register(a, IN)
        b.send(b"x")
        before = calls.copy()
        assert ep.poll(0) == [(a.fileno(), IN)]
        spent = calls - before
        assert spent["poll"] == 1 and not spent["epoll_ctl"] and not spent["epoll_wait"]
        ep.modify(a, IN | ET)
        before = calls.copy()
        assert ep.poll(0) == [(a.fileno(), IN)]
        assert ep.poll(0) == []
        spent = calls - before
        assert (spent["poll"], spent["epoll_wait"], spent["epoll_ctl"]) == (2, 1, 0)
        before = calls.copy()
        ep.unregister(a)
        assert (calls - before)["epoll_ctl"] == 1
        ep.close()


def test_shutdown_closes_epolls(pair: Pair) -> None:
    # The LibOS's shutdown closes the epoll (its host descriptor is gone); the object is
    # not closed by the program, so it stays open as natively, and every call that would
    # act on the epoll says EBADF, at once, naming the shutdown.
    with booted("direct") as libos:
        ep = libos.epoll()
        ep.register(pair[0], IN)
        number = ep.fileno()
    assert ep._inst is not None and ep._inst.closed
    assert number not in open_fds()
    assert not ep.closed
    calls: list[Callable[[], object]] = [
        lambda: ep.register(pair[1], IN),
        lambda: ep.modify(pair[0], OUT),
        lambda: ep.unregister(pair[0]),
        lambda: ep.poll(),  # no timeout: must not wait
        lambda: ep.poll(BOUND, 1),
    ]
    for call in calls:
        with pytest.raises(OSError, match="the LibOS has shut down") as info:
            call()
        assert info.value.errno == errno.EBADF
    ep.close()
    assert ep.closed
    with pytest.raises(ValueError, match="closed epoll"):
        ep.poll(0)


def test_an_unclosed_selector_after_shutdown_unregisters_and_closes_quietly(pair: Pair) -> None:
    # What an asyncio loop's finalizer does after the LibOS shut down: EpollSelector
    # takes the EBADF of unregister as a descriptor gone.
    with booted("direct") as libos:
        sel = selectors.EpollSelector()
        sel._selector.close()  # type: ignore[attr-defined]
        sel._selector = libos.epoll()  # type: ignore[attr-defined]
        sel.register(pair[0], selectors.EVENT_READ)
    assert sel.unregister(pair[0]).fd == pair[0].fileno()
    sel.close()
