"""A forked child that shuts its copy of a host down leaves the parent's channels alone.

After ``os.fork()`` the child holds the parent's descriptors, and they name the same
sockets and eventfds: a socket shut down in the child is shut down in the parent, and a
close_notify the child sends ends the parent's TLS session.  A program that forks under
``pylibos run`` has a child that exits normally (its ``atexit`` handlers run), so the
child may only close its own copies of the descriptors.
"""

from __future__ import annotations

import os
import time
import warnings

import pytest

from pylibos import pal
from pylibos.pal import EVENT_TOKEN, WAIT_HANG_UP, WAIT_READ

from ._pal_support import KINDS

BOUND = 20.0


def _in_a_child(work: object) -> int:
    """Fork, run ``work()`` in the child and ``os._exit``; the child's exit status."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads are running
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            work()  # type: ignore[operator]
            status = 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + BOUND
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child's host shutdown did not end")
        time.sleep(0.01)  # polling a child's exit: there is no wait with a timeout


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", ["raw", "tls", "eventfd"])
def test_a_forked_child_shutting_its_host_down_leaves_the_parents_channels(
    kind: str, what: str
) -> None:
    with pal.open_host(kind) as host:
        if what == "eventfd":
            read = write = host.stream_open("eventfd:")
        else:
            read, write = host.create_pipe(raw=what == "raw")
        handles = [read] if read is write else [read, write]
        # A handshake still running would be the child's too; wait for it first.
        host.write(write, EVENT_TOKEN)
        assert host.read(read, 64) == EVENT_TOKEN
        assert _in_a_child(lambda: host.shutdown(timeout=BOUND)) == 0
        ready = host.streams_wait_events([read], [WAIT_READ], 0)
        assert not ready[0] & WAIT_HANG_UP, "the child shut the parent's socket down"
        assert ready == [0], "the child woke the parent's channel"
        host.write(write, EVENT_TOKEN)
        assert host.read(read, 64) == EVENT_TOKEN
        for h in handles:
            host.close(h)
