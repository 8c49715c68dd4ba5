"""Which ready entries a ``poll`` with a small ``maxevents`` reports.

Linux keeps an epoll's ready entries in a list and, after reporting a level-triggered
one, puts it back at the *end* (``ep_send_events``): a program that polls with
``maxevents=1`` (or any number smaller than what is ready) sees every ready descriptor
in turn.  Nothing ready is starved by something that stays ready."""

from __future__ import annotations

import select
import signal
import socket
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import _with_lines, booted, interrupted
from pylibos.libos import _epoll_events, _epoll_ready, _interest
from pylibos.pal import _interrupts

IN, OUT, ET = select.EPOLLIN, select.EPOLLOUT, select.EPOLLET


def reported(make: Callable[[], Any], polls: int, setup: Callable[[Any], None]) -> list[int]:
    """The descriptors ``polls`` successive ``poll(0, 1)`` report."""
    ep = make()
    try:
        setup(ep)
        return [fd for _ in range(polls) for fd, _ev in ep.poll(0, 1)]
    finally:
        ep.close()


@pytest.mark.parametrize("config", [("sgx", "raw"), ("direct", "pipe")], ids=lambda c: "/".join(c))
def test_ready_level_triggered_entries_take_turns(config: tuple[str, str]) -> None:
    # Two always-writable sockets, each registered for EPOLLOUT; four
    # poll(0, maxevents=1): natively [a, c, a, c].  The LibOS reports [a, a, a, a]: its
    # _wait (libos/_interest.py) walks the entries in registration order and stops at
    # maxevents, so c is never reported while a stays ready.
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d, booted(*config) as libos:

        def setup(ep: Any) -> None:
            ep.register(a, OUT)
            ep.register(c, OUT)

        native = reported(select.epoll, 4, setup)
        under = reported(libos.epoll, 4, setup)
        assert native == [a.fileno(), c.fileno()] * 2
    assert under == native


def test_an_edge_triggered_entry_is_not_starved_by_a_level_triggered_one() -> None:
    # a: level-triggered EPOLLOUT (always ready); c: EPOLLIN | EPOLLET with data
    # waiting.  Natively two poll(0, 1) report a, then c.  The LibOS reports a, a: the
    # level-triggered entries fill maxevents before the edge watch is taken
    # (EpollInstance._wait, "if edges and ready[-1] and len(results) < maxevents"), so the
    # edge is never delivered while a is writable.
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d, booted("sgx", "raw") as libos:
        d.send(b"x")

        def setup(ep: Any) -> None:
            ep.register(a, OUT)
            ep.register(c, IN | ET)

        native = reported(select.epoll, 2, setup)
        under = reported(libos.epoll, 2, setup)
        assert native == [a.fileno(), c.fileno()]
    assert under == native


@pytest.mark.parametrize("maxevents", [1, 2, 3])
def test_every_ready_entry_is_reported_within_a_round(maxevents: int) -> None:
    # Five always-writable sockets, level- and edge-triggered: as many polls as it takes
    # to report each once report each once, in turn, natively and on the LibOS.
    pairs = [socket.socketpair() for _ in range(5)]
    try:
        with booted("sgx", "raw") as libos:
            fds = [a.fileno() for a, _b in pairs]
            rounds = -(-len(fds) // maxevents)
            for make in (select.epoll, libos.epoll):
                ep = make()
                try:
                    for i, fd in enumerate(fds):
                        ep.register(fd, OUT | (ET if i % 2 else 0))
                    seen = [fd for _ in range(rounds) for fd, _ev in ep.poll(0, maxevents)]
                finally:
                    ep.close()
                # The edge-triggered ones are reported once (their edge is the register).
                assert sorted(seen[: len(fds)]) == fds, make
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def _sigint_at(codes: set[CodeType], n: int, fired: list[int]) -> Any:
    """A trace function calling the PAL's SIGINT handler (as a real Ctrl-C would run it)
    at the ``n``-th line the main thread runs in frames of ``codes``, but for their
    ``with`` lines (see ``libos_support.sigint_at_line``)."""
    count = 0
    skip = {(code, line) for code in codes for line in _with_lines(code)}

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line" and (frame.f_code, frame.f_lineno) not in skip:
            count += 1
            if count == n:
                fired.append(frame.f_lineno)
                _interrupts._on_sigint(signal.SIGINT, frame)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code in codes else None

    return tracer


def test_a_ctrl_c_anywhere_in_a_poll_loses_no_ready_entry() -> None:
    # A level-triggered entry always ready and an edge-triggered one with data waiting,
    # polled with maxevents=1 (so the edge is taken from the watch and left pending): a
    # Ctrl-C at any line of the wait and the reporting leaves both registered, and the
    # edge is reported, by the interrupted poll or by one of the next.
    codes = {
        _interest.EpollInstance._wait.__code__,
        _interest.EpollInstance._report.__code__,
        _interest.EpollInstance._take_edges.__code__,
        _epoll_ready._choose.__code__,
        _epoll_events.Entry.report.__code__,
    }
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d, booted("sgx", "raw") as libos:
        d.send(b"x")
        n = 0
        while True:
            n += 1
            ep = libos.epoll()
            try:
                ep.register(a, OUT)
                ep.register(c, IN | ET)
                inst = ep._inst
                assert inst is not None
                edge = inst.entries[c.fileno()]
                turn = edge.turn
                fired: list[int] = []
                interrupted(lambda: ep.poll(0, 1), _sigint_at(codes, n, fired))  # noqa: B023
                if not fired:
                    break
                assert set(inst.entries) == {a.fileno(), c.fileno()}, fired
                later = [fd for _ in range(3) for fd, _ev in ep.poll(0, 1)]
                assert edge.turn != turn or c.fileno() in later, fired
                assert a.fileno() in later
            finally:
                ep.close()
        assert n > 20  # the lines were reached
