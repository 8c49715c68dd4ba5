"""Attack on the eventfd I/O record (``_io``) and the closes count (``_closes``) across
fork: a child inherits the parent's records of reads, writes and closes under way on the
parent's other threads, which do not exist in the child.  A close there leaves the
release to an I/O that never ends, and shutdown leaves the registry to a close that
never ends: the child's copies of the descriptors are never closed."""

from __future__ import annotations

import os
import threading

from libos_support import wait_until
from pylibos import pal
from pylibos.pal._identity import EventfdRegistry

from ._pal_support import in_a_child, open_fds

BOUND = 10.0


def test_a_fork_child_closes_an_eventfd_a_parent_thread_was_reading() -> None:
    """A parent thread is blocked in a read of an eventfd (recorded in ``_io``) when the
    process forks.  In the child, ``close`` of that handle and then ``shutdown`` close the
    child's copies of the eventfd and of the registry's epoll, as docs/robustness.md
    says (``host.shutdown`` and ``close`` close the child's copies)."""
    host = pal.open_host("direct")
    handle = host.stream_open("eventfd:")  # blocking
    out: list[object] = []

    def reader() -> None:
        try:
            out.append(host.read(handle, 8))
        except pal.PalError as exc:
            out.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert wait_until(lambda: handle in host._io, BOUND)
        registry = host._eventfds
        assert isinstance(registry, EventfdRegistry)

        def child() -> int:
            efd = registry._efd
            host.close(handle)
            fds = open_fds()
            host.shutdown(0.0)
            after = open_fds()
            left = [
                what
                for what, fd, where in (
                    ("eventfd after close", handle._fd, fds),
                    ("eventfd after shutdown", handle._fd, after),
                    ("registry epoll after shutdown", efd, after),
                )
                if fd in where
            ]
            if left:
                os.write(2, f"child left open: {left}\n".encode())
                return 1
            return 0

        assert in_a_child(child) == 0, "the child's close and shutdown left copies open"
    finally:
        os.eventfd_write(handle._fd, 1)  # wake the reader
        thread.join(BOUND)
        host.shutdown()
    assert not thread.is_alive()
