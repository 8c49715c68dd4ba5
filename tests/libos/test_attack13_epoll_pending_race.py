"""A pending edge (taken from the watch, left out of a report cut by ``maxevents``) and
two threads polling one epoll.

On Linux an edge-triggered entry on the ready list is reported once: the first
``epoll_wait`` to send it takes it off the list, and a second waiter does not see it
until a new edge.  The LibOS polls its pending edges like level-triggered entries for a
round; the round snapshots ``pending`` under the lock, waits on the host without it,
and chooses afterwards."""

from __future__ import annotations

import inspect
import select
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from libos_support import BOUND, booted
from pylibos.libos import _interest

IN, OUT, ET = select.EPOLLIN, select.EPOLLOUT, select.EPOLLET


def _line_after_the_host_wait() -> int:
    lines, start = inspect.getsourcelines(_interest.EpollInstance._wait)
    return start + next(i for i, text in enumerate(lines) if "if ready[0]:" in text)


def _polls(make: Callable[[], Any], between: bool) -> list[list[tuple[int, int]]]:
    """a: level-triggered EPOLLOUT (always ready), c: EPOLLIN | EPOLLET with data.
    poll(0, 1) by this thread, poll(0, 1) by another, poll(0, 2) by this thread; with
    ``between``, the other thread's poll runs while this thread's poll(0, 2) is past its
    host wait and before its choice (natively a poll is one system call: the same as
    running it before)."""
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    ep = make()
    other: list[tuple[int, int]] = []

    def helper() -> None:
        other.extend(ep.poll(0, 1))

    def run_helper() -> None:
        t = threading.Thread(target=helper)
        t.start()
        t.join(BOUND)
        assert not t.is_alive()

    try:
        ep.register(a, OUT)
        ep.register(c, IN | ET)
        d.send(b"x")
        first = ep.poll(0, 1)
        if not between:
            run_helper()
            return [first, other, ep.poll(0, 2)]
        line = _line_after_the_host_wait()
        fired: list[int] = []

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == line and not fired:
                fired.append(line)
                run_helper()
            return local

        def glob(frame: FrameType, event: str, arg: Any) -> Any:
            return local if frame.f_code is _interest.EpollInstance._wait.__code__ else None

        sys.settrace(glob)
        try:
            last = ep.poll(0, 2)
        finally:
            sys.settrace(None)
        assert fired
        return [first, other, last]
    finally:
        ep.close()
        for s in (a, b, c, d):
            s.close()


@pytest.mark.parametrize("config", [("direct", "pipe"), ("sgx", "raw")], ids=lambda c: "/".join(c))
def test_a_pending_edge_is_reported_once_to_two_polling_threads(config: tuple[str, str]) -> None:
    # Natively: poll(0, 1) -> [a] (c's edge stays on the ready list), the other
    # thread's poll(0, 1) -> [c] (takes it off), then poll(0, 2) -> [a] only.  The LibOS
    # reports c twice: the last poll read c from ``pending`` before its host wait
    # (EpollInstance._wait, "polled = level + _still_pending(...)"), the other thread
    # reported c and dropped it from pending meanwhile, and _choose (libos/_epoll_ready.py)
    # reports an edge-triggered entry it polled as pending whether or not it is still
    # pending ("if entry.edge and pending.get(entry.fd) is entry: del ..." then reports
    # it anyway), so the one edge is reported to both threads.
    native = [[ev for _fd, ev in got] for got in _polls(select.epoll, between=False)]
    assert native == [[OUT], [IN], [OUT]]
    with booted(*config) as libos:
        under = [[ev for _fd, ev in got] for got in _polls(libos.epoll, between=True)]
    assert under == native
