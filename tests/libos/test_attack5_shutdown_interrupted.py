"""LibOS.shutdown cut short by a Ctrl-C, then called again to finish the teardown.

docs/robustness.md: "A teardown cut short by a Ctrl-C is finished by calling shutdown
again."  The PAL's own SIGINT handler is called (as the interpreter would run it) at
each line of the teardown's release of what it holds: the pool's ``EventFactory.close``,
the sweep of the thread table in ``shutdown``, and an epoll's ``EpollInstance.close``
(the teardown closes every epoll).  After a second ``shutdown`` the LibOS must hold
nothing on its host: every pooled and every table event closed, every epoll's edge
watch and interest handles closed.

Before the fix (failed on 777d49b):
``EventFactory.close`` swaps the pool for an empty list, then destroys
what it took from a local list; a Ctrl-C during that loop (on the ``for`` line, or
raised at the end of one event's ``destroy``, whose host close is a critical section)
loses the rest, and the second ``close`` finds an empty pool.  The table sweep takes a
thread out of the table before it destroys its event: a Ctrl-C between the two leaves
an event nobody will close (the second sweep no longer sees the thread).
``EpollInstance.close`` marks the epoll closed and takes its entries before it closes
their handles and its edge watch (a host epoll descriptor): cut short there, the
second close returns at once (``closed``), and the watch and the handles stay.  All
stay open on the host until the host itself shuts down."""

from __future__ import annotations

import select
import socket
import threading
from types import CodeType
from typing import Any

import pytest

from libos_support import BOUND, interrupted, sigint_at_line
from pylibos.libos import LibOS
from pylibos.libos._event import EventFactory
from pylibos.libos._interest import EpollInstance
from pylibos.libos._teardown import Teardown
from pylibos.pal import open_host

MAIN = threading.main_thread().ident


def _cut_short_then_again(code: CodeType, n: int) -> tuple[int | None, list[str]]:
    """A pooled LibOS with events in its pool and one thread in its table; shutdown
    interrupted at line ``n`` of ``code``, then called again.  Returns the line the
    handler was called at (None: ``code`` ran fewer lines) and what the host still
    holds after the second shutdown."""
    fired: list[int] = []
    host = open_host("direct")
    libos = LibOS(host, "eventfd", pool=True)
    a, b = socket.socketpair()
    try:
        go = threading.Event()
        done = [libos.clone(go.wait, BOUND) for _ in range(3)]
        go.set()
        for thread in done:
            assert thread.join(BOUND)
        assert len(libos._factory._free) == 3
        parked = threading.Event()
        stays = libos.clone(parked.wait, BOUND)  # in the table through the teardown
        ep = libos.epoll()  # closed by the teardown, with what it watches
        ep.register(a.fileno(), select.EPOLLIN)
        came = interrupted(lambda: libos.shutdown(0.01), sigint_at_line(code, n, fired))
        assert came == bool(fired), fired
        libos.shutdown(0.01)  # finishes the teardown cut short
        # The workers were told to stop; one that did not end within the 10 ms (a loaded
        # machine) still holds what it owns (the IPC worker its listener) and closes it
        # as it ends, as shutdown promises for a thread still running when the time is
        # up.  Once they have ended, the LibOS must hold nothing on its host.
        for worker in (libos._async, libos._ipc):
            if worker is not None and worker.thread is not None:
                assert worker.thread.join(BOUND)
        left = [f"{h.uri} fd {h._fd}" for h in host.open_handles()]
        parked.set()
        assert stays.join(BOUND)
    finally:
        libos.shutdown()
        host.shutdown()
        a.close()
        b.close()
    return (fired[0] if fired else None), left


@pytest.mark.parametrize(
    "where",
    [EventFactory.close, Teardown.shutdown, EpollInstance.close],
    ids=["EventFactory.close", "Teardown.shutdown", "EpollInstance.close"],
)
def test_a_shutdown_cut_short_and_called_again_closes_every_event(where: Any) -> None:
    code = where.__code__
    leaks: dict[int, list[str]] = {}
    n = 1
    while True:
        line, left = _cut_short_then_again(code, n)
        if line is None:
            break
        if left:
            leaks[line] = left
        n += 1
    assert n > 3, "no interrupt landed"
    assert not leaks, f"handles left open after the second shutdown, by line: {leaks}"
