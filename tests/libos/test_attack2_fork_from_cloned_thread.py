"""A child forked by a thread the LibOS cloned (any thread of the program's but the main
one): that thread is the child's one thread, its main thread.  The child's LibOS keeps
it in its table (it is the child's ``current_thread``), but its shutdown must not join
it: the join, made by that very thread, can only end at the shutdown's timeout; the
host's shutdown likewise."""

from __future__ import annotations

import time

from libos_support import BOUND, in_fork_child
from pylibos import pal
from pylibos.libos import LibOS


def test_a_child_forked_by_a_cloned_thread_shuts_down_without_waiting_for_itself() -> None:
    host = pal.open_host("direct")
    libos = LibOS(host, "eventfd")

    def child() -> str:  # pragma: no cover - runs in the fork child
        ran: list[int] = []
        libos.clone(ran.append, 1).join(BOUND)  # the child's LibOS works
        t0 = time.monotonic()
        libos.shutdown(timeout=2.0)
        t1 = time.monotonic()
        host.shutdown(timeout=2.0)
        t2 = time.monotonic()
        return f"{ran} {t1 - t0:.2f} {t2 - t1:.2f}"

    answers: list[str] = []
    try:
        libos.clone(lambda: answers.append(in_fork_child(child))).join(BOUND + 5)
        assert answers, "the forking thread reported nothing"
        ran, libos_took, host_took = answers[0].rsplit(" ", 2)
        assert ran == "[1]", answers[0]
        assert float(libos_took) < 1.0 and float(host_took) < 1.0, (
            f"in a child forked by a cloned thread, LibOS.shutdown took {libos_took} s and "
            f"host.shutdown {host_took} s of their 2 s timeouts: each joined the thread "
            f"running it"
        )
    finally:
        libos.shutdown()
        host.shutdown()
