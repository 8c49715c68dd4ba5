"""A fork child's thread slots: the parent's other host threads are not in the child,
so the slots they held must come back there.  Before, a child forked while the parent's
threads held every slot of an sgx host could start no thread at all (each start waited
out ``slot_timeout`` and failed with NOMEM), and a join of a parent's thread hung."""

from __future__ import annotations

import threading

from libos_support import BOUND, in_fork_child, wait_until
from pylibos import pal


def test_a_fork_child_gets_back_the_slots_of_the_parents_threads() -> None:
    host = pal.open_host("sgx", max_threads=3)
    assert isinstance(host, pal.SgxHost)
    go = threading.Event()
    busy = [host.thread_create(go.wait, BOUND) for _ in range(2)]  # every slot taken

    def child() -> str:  # pragma: no cover - runs in the fork child
        joined = all(t.join(0.5) for t in busy)
        ran: list[int] = []
        threads = [host.thread_create(ran.append, i) for i in range(2)]
        started = all(t.join(BOUND) for t in threads)
        return f"{joined} {started} {sorted(ran)} {host.threads_in_use}"

    try:
        assert in_fork_child(child) == "True True [0, 1] 1"
        assert all(t.is_alive() for t in busy)  # the parent's are untouched
    finally:
        go.set()
        for t in busy:
            t.join(BOUND)
        host.shutdown()


def test_a_fork_child_lists_no_waiter_of_the_parents() -> None:
    """A parent's thread waiting for a slot at the fork is not in the child: its exits
    ring for nobody, and a wait of its own is listed and woken as in the parent."""
    host = pal.open_host("sgx", max_threads=2)
    assert isinstance(host, pal.SgxHost)
    host.slot_timeout = BOUND
    go = threading.Event()
    busy = host.thread_create(go.wait, BOUND)  # the one slot besides the main thread's
    waited: list[object] = []

    def wait_for_a_slot() -> None:
        try:
            waited.append(host.thread_create(lambda: None).join(BOUND))
        except pal.PalError as exc:
            waited.append(exc)

    waiter = threading.Thread(target=wait_for_a_slot)
    waiter.start()

    def child() -> str:  # pragma: no cover - runs in the fork child
        listed = len(host._waiting)
        gate = threading.Event()
        holder = host.thread_create(gate.wait, BOUND)
        late: list[bool] = []
        other = threading.Thread(target=lambda: late.append(host.thread_create(int).join(BOUND)))
        other.start()
        seen = wait_until(lambda: bool(host._waiting))
        gate.set()
        holder.join(BOUND)
        other.join(BOUND)
        return f"{listed} {seen} {late} {len(host._waiting)}"

    try:
        assert wait_until(lambda: bool(host._waiting))
        assert in_fork_child(child) == "0 True [True] 0"
    finally:
        go.set()
        busy.join(BOUND)
        waiter.join(BOUND)
        host.shutdown()
    assert waited == [True]
