"""A Ctrl-C at each line of an epoll's ``register`` and ``unregister`` (the main thread's
epoll: asyncio's selector under ``pylibos run``).

Whatever line is hit, once the epoll is closed nothing it made may stay open on the
host: no handle over a registered descriptor, no edge watch.

Before the fix (failed on 777d49b):
``register`` opens the handle over the descriptor, then enters the
``try`` whose ``finally`` closes it if it was not added: a Ctrl-C in between (the
handler runs as the call returns) leaves the handle open and in no entry; so does one
between ``added = True`` and the entry's store (the ``finally`` then skips the close).
``unregister`` pops the entry, then tests it, then enters the ``try`` whose
``finally`` closes its handle: a Ctrl-C in between leaves the handle open (and, for an
edge-triggered entry, the host's edge watch still watching the descriptor)."""

from __future__ import annotations

import functools
import select
import socket
import threading

import pytest

from libos_support import interrupted, sigint_at_line
from pylibos.libos import LibOS
from pylibos.libos._interest import EpollInstance
from pylibos.pal import open_host

MAIN = threading.main_thread().ident


def _ctl_cut_short(op: str, mask: int, n: int) -> tuple[int | None, list[str]]:
    host = open_host("direct")
    libos = LibOS(host, "eventfd")
    a, b = socket.socketpair()
    fired: list[int] = []
    try:
        before = set(host.open_handles())
        ep = libos.epoll()
        try:
            if op == "unregister":
                ep.register(a.fileno(), mask)
            work = functools.partial(
                getattr(ep, op), a.fileno(), *([mask] if op == "register" else [])
            )
            code = getattr(EpollInstance, op).__code__
            came = interrupted(work, sigint_at_line(code, n, fired))
            assert came == bool(fired), fired
        finally:
            ep.close()
        left = [f"{h.uri} fd {h._fd}" for h in set(host.open_handles()) - before]
    finally:
        libos.shutdown()
        host.shutdown()
        a.close()
        b.close()
    return (fired[0] if fired else None), left


@pytest.mark.parametrize(
    "mask", [select.EPOLLIN, select.EPOLLIN | select.EPOLLET], ids=["level", "edge"]
)
@pytest.mark.parametrize("op", ["register", "unregister"])
def test_an_epoll_ctl_cut_short_leaves_nothing_open_once_closed(op: str, mask: int) -> None:
    leaks: dict[int, list[str]] = {}
    n = 1
    while True:
        line, left = _ctl_cut_short(op, mask, n)
        if line is None:
            break
        if left:
            leaks[line] = left
        n += 1
    assert n > 3, "no interrupt landed"
    assert not leaks, f"handles left open once the epoll closed, by line: {leaks}"
