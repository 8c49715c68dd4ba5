"""A program that closes every descriptor it did not open (``os.closerange(3, N)``, as a
daemon does when it detaches, e.g. python-daemon's ``DaemonContext``) goes on working
under ``python``; under ``pylibos run`` the descriptors it closes include the LibOS's and
the PAL's, which the LibOS must get over (it rebuilds a closed event channel) so the
program's later threads and epolls work as natively."""

from __future__ import annotations

from pathlib import Path

import pytest

from run_support import native_and_under

PROGRAM = """\
import os, select, socket, threading
os.closerange(3, 4096)
out = []
t = threading.Thread(target=lambda: out.append("ran"))
t.start()
t.join(10)
a, b = socket.socketpair()
ep = select.epoll()
ep.register(a, select.EPOLLOUT)
print(out, [events for _fd, events in ep.poll(10)])
"""


@pytest.mark.parametrize("events", ["eventfd", "raw"])
def test_threads_and_epoll_after_the_program_closes_all_descriptors(
    tmp_path: Path, events: str
) -> None:
    # Natively: stdout "['ran'] [4]", status 0.  Under --events eventfd the closed
    # descriptors include the eventfd registry's own epoll (pal/_identity.py), which the
    # PAL finds gone and replaces; under raw, the LibOS's event channels.
    (tmp_path / "closer.py").write_text(PROGRAM)
    native, under = native_and_under(tmp_path, ["closer.py"], ("--events", events))
    assert native == (0, "['ran'] [4]\n", "")
    assert under == native
