"""A child forked while a thread of the parent sleeps in a LibOS epoll.  The child's
LibOS forgets the parent's threads so that its shutdown does not wake them "through
their events (whose channels are the parent's as well)", and the PAL's shutdown in a
child writes nothing to the parent's channels; but the child's ``LibOS.shutdown``
closes its epolls, and closing one sets the event of every waiter listed on it: the
parent's sleeping thread's.  On sgx pipes that ``set`` seals a TLS record with the
sequence number the parent's session will use next, into the parent's socket: the
parent's next set and clear of that event find the channel broken, and it is made
anew (``rebuilt``).  (On an eventfd the same ``set`` counts the parent's eventfd, which
the child's ``host.shutdown`` is documented never to do.)"""

from __future__ import annotations

import time

from libos_support import BOUND, in_fork_child
from pylibos import pal
from pylibos.libos import LibOS


def test_a_childs_shutdown_leaves_the_parents_epoll_waiter_alone() -> None:
    host = pal.open_host("sgx", max_threads=8)
    libos = LibOS(host, "pipe", pool=True)
    ep = libos.epoll()
    inst = ep._inst
    assert inst is not None
    got: list[list[tuple[int, int]]] = []
    sleeper = libos.clone(lambda: got.append(ep.poll(1.0)))
    try:
        deadline = time.monotonic() + BOUND
        while not inst.waiters and time.monotonic() < deadline:
            time.sleep(0.002)  # polling for a state, bounded: the sleeper is in poll
        assert inst.waiters, "the thread never slept in the epoll"
        event = sleeper.event
        assert event is not None

        def child() -> str:  # pragma: no cover - runs in the fork child
            libos.shutdown(timeout=2.0)
            return "shut down"

        assert in_fork_child(child, timeout=5.0) == "shut down"
        assert sleeper.join(BOUND)
        assert got == [[]]
        # The sleeper's event is back in the pool; the parent's own use of it next (a
        # set and a clear, as a wake of its next thread does) must find its channel
        # whole: nothing but the parent writes to it.
        event.set()
        event.clear()
        assert not event.closed and event.rebuilt == 0, (
            "a fork child's LibOS.shutdown wrote into the event channel of a parent's "
            "thread asleep in epoll: the parent found the channel broken "
            f"(closed {event.closed}, rebuilt {event.rebuilt})"
        )
    finally:
        ep.close()
        libos.shutdown()
        host.shutdown()
