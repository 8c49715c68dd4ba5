"""A forked child that shuts its copy of a host down leaves the parent's channels alone.

After ``os.fork()`` the child holds the parent's descriptors, and they name the same
sockets and eventfds: a socket shut down in the child is shut down in the parent, and a
close_notify the child sends ends the parent's TLS session.  A program that forks under
``pylibos run`` has a child that exits normally (its ``atexit`` handlers run), so the
child may only close its own copies of the descriptors.
"""

from __future__ import annotations

import pytest

from pylibos import pal
from pylibos.pal import EVENT_TOKEN, WAIT_HANG_UP, WAIT_READ

from ._pal_support import KINDS, in_a_child

BOUND = 20.0


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
        assert in_a_child(lambda: host.shutdown(timeout=BOUND)) == 0
        ready = host.streams_wait_events([read], [WAIT_READ], 0)
        assert not ready[0] & WAIT_HANG_UP, "the child shut the parent's socket down"
        assert ready == [0], "the child woke the parent's channel"
        host.write(write, EVENT_TOKEN)
        assert host.read(read, 64) == EVENT_TOKEN
        for h in handles:
            host.close(h)
