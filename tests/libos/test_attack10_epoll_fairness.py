"""Which ready entries a ``poll`` with a small ``maxevents`` reports.

Linux keeps an epoll's ready entries in a list and, after reporting a level-triggered
one, puts it back at the *end* (``ep_send_events``): a program that polls with
``maxevents=1`` (or any number smaller than what is ready) sees every ready descriptor
in turn.  Nothing ready is starved by something that stays ready."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

import pytest

from libos_support import booted

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
    # FAILS.  Two always-writable sockets, each registered for EPOLLOUT; four
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
    # FAILS.  a: level-triggered EPOLLOUT (always ready); c: EPOLLIN | EPOLLET with data
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
