"""A fork child's thread slots: the parent's other host threads are not in the child,
so the slots they held must come back there.  Before, a child forked while the parent's
threads held every slot of an sgx host could start no thread at all (each start waited
out ``slot_timeout`` and failed with NOMEM), and a join of a parent's thread hung."""

from __future__ import annotations

import threading

from libos_support import BOUND, in_fork_child
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
