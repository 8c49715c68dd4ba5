"""A fork child's host-call accounts: the ledger keeps one per thread ident in a dict,
which the child inherits whole.  The C library hands the parent's other threads' stacks,
and so their idents, to the child's new threads: a thread the child starts must not take
over the count of the parent's thread that had its ident (a LibOS worker's, whose count
``worker_host_calls`` then grows with the program's own host calls in the child)."""

from __future__ import annotations

from libos_support import BOUND, in_fork_child
from pylibos import pal
from pylibos.libos import LibOS


def test_a_fork_childs_threads_start_their_own_host_call_accounts() -> None:
    host = pal.open_host("direct")
    libos = LibOS(host, "eventfd")

    def child() -> str:  # pragma: no cover - runs in the fork child
        workers_before = libos.worker_host_calls()
        firsts: list[int] = []

        def body() -> None:
            firsts.append(host.thread_calls())  # none made yet by this thread
            event = libos.current_thread().event
            for _ in range(20):
                event.set()
                event.clear()

        for _ in range(3):  # one after another: each may get a parent's ident
            libos.clone(body).join(BOUND)
        return f"{max(firsts)} {libos.worker_host_calls() - workers_before}"

    try:
        answer = in_fork_child(child)
        first, workers_grew = (int(x) for x in answer.split())
        assert first == 0 and workers_grew == 0, (
            f"in the fork child, a new thread's own host-call count started at {first} "
            f"(the parent's thread of the same ident's), and the LibOS workers' count "
            f"(which do not run in the child) grew by {workers_grew}"
        )
    finally:
        libos.shutdown()
        host.shutdown()
