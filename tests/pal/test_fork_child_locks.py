"""A fork while another thread holds one of the PAL's locks.

The child of ``os.fork`` has only the forking thread: a lock another thread of the
parent held at that moment is held for ever in the child, unless the PAL makes it anew
there.  The PAL supports a forked child (docs/robustness.md), so whatever the parent's
threads held, the child's host calls, eventfds, edge watches and hosts must work.  A
parent thread holds the real lock across the fork; the child uses what takes it.  (The
host-call ledger had a lock, taken by every host call: a fork while any thread of the
program, or a LibOS worker's periodic recheck, counted one hung the child.  Its counts
now take none: see ``tests/pal/test_ledger_counts.py``.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest

from libos_support import BOUND, in_fork_child
from pylibos import pal
from pylibos.pal import WAIT_READ, _edges, _interrupts

CHILD_S = 5.0  # what the child does takes milliseconds: this is a hang


def _eventfd(host: pal.Host) -> None:
    host.close(host.stream_open("eventfd:"))


def _edge_watch(host: pal.Host) -> None:
    a, b = socket.socketpair()
    try:
        watch = host.edge_watch_open()
        handle = host.stream_from_fd(a.fileno())
        host.edge_watch_add(watch, handle, WAIT_READ)
        host.edge_watch_remove(watch, handle)
        host.close(handle)
        host.close(watch)
    finally:
        a.close()
        b.close()


def _shut_down(host: pal.Host) -> None:
    _eventfd(host)
    host.shutdown()  # retires the eventfd registry, under the host's lock


def _another_host(_host: pal.Host) -> None:
    pal.open_host("direct").shutdown()  # the SIGINT handler's users, under its lock


LOCKS: dict[str, tuple[Callable[[pal.Host], threading.Lock], Callable[[pal.Host], None]]] = {
    "host's own": (lambda host: host._lock, _shut_down),
    "edge watch entries": (lambda host: _edges._entries_lock, _edge_watch),
    "SIGINT handler users": (lambda host: _interrupts._lock, _another_host),
}


@pytest.mark.parametrize("which", sorted(LOCKS))
def test_a_child_forked_while_a_lock_is_held_elsewhere_goes_on(which: str) -> None:
    lock_of, use = LOCKS[which]
    host = pal.open_host("direct")
    _eventfd(host)  # the registry exists before the fork
    lock = lock_of(host)
    held, forked = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            forked.wait(BOUND)

    def child() -> str:  # pragma: no cover - runs in the fork child
        use(host)
        return "ok"

    thread = threading.Thread(target=holder)
    try:
        thread.start()
        assert held.wait(BOUND)
        answer = in_fork_child(child, CHILD_S)
        assert answer == "ok", f"with the {which} lock held by a parent's thread: {answer}"
    finally:
        forked.set()
        thread.join(BOUND)
        host.shutdown()
