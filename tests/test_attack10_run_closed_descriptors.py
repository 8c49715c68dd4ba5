"""A program that closes every descriptor it did not open (``os.closerange(3, N)``, as a
daemon does when it detaches, e.g. python-daemon's ``DaemonContext``) goes on working
under ``python``; under ``pylibos run`` the descriptors it closes include the LibOS's and
the PAL's, which the LibOS must get over (it rebuilds a closed event channel) so the
program's later threads and epolls work as natively."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = [sys.executable, "-m", "pylibos", "run"]
BOUND = 30.0

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
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for cmd in (
            [sys.executable, "closer.py"],
            [*RUN, "--events", events, "--", "closer.py"],
        )
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=BOUND)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    native, under = results
    assert native == (0, "['ran'] [4]\n", "")
    assert under == native
