"""A fork child's copy of the LibOS: its fork hook drops the parent's cloned threads from
the thread table as well as from ``_running``, and its shutdown leaves the parent's
workers alone.  So ``LibOS.shutdown`` in the child neither wakes the parent's threads
through their events (whose channels, the same eventfds, are the parent's too) nor spends
its timeout joining threads and workers that do not exist in the child."""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any

from libos_support import BOUND
from pylibos import pal
from pylibos.libos import LibOS


def test_a_fork_childs_shutdown_leaves_the_parents_threads_alone() -> None:
    """A parent LibOS thread waits on its own event.  A child forked meanwhile shuts its
    copy of the LibOS down: the parent's thread is not woken by it (its event is not
    set through the shared eventfd), and the child's shutdown does not spend its timeout
    joining a thread that is not there."""
    host = pal.open_host("direct")
    libos = LibOS(host, "eventfd")
    waiting = threading.Event()
    seen: dict[str, Any] = {}

    def body() -> None:
        event = libos.current_thread().event
        waiting.set()
        seen["woken"] = event.wait(BOUND)
        seen["at"] = time.monotonic()

    read_fd, write_fd = os.pipe()
    thread = None
    try:
        thread = libos.clone(body)
        assert waiting.wait(BOUND)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads run
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                t0 = time.monotonic()
                libos.shutdown(timeout=2.0)
                os.write(write_fd, f"{time.monotonic() - t0:.3f}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        write_fd = -1
        took = float(os.read(read_fd, 100).decode() or "nan")
        _, status = os.waitpid(pid, 0)
        child_done = time.monotonic()
        assert os.waitstatus_to_exitcode(status) == 0
        # Had the child set the parent's thread's event, the thread wakes at once.
        assert thread._pal is not None
        thread._pal.join(0.5)
        woken_by_child = "woken" in seen and seen["at"] <= child_done + 0.5
        assert not woken_by_child and took < 1.0, (
            f"the fork child's LibOS.shutdown woke the parent's thread: {woken_by_child}; "
            f"it took {took} s of its 2 s timeout, joining the parent's threads"
        )
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        libos.shutdown()
        host.shutdown()
    assert thread is not None and thread._pal is not None and not thread._pal.is_alive()
