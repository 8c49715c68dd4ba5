"""Shared fixtures: every test module leaves the process with the fds and threads it found."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from libos_support import MakePair, Pipe, open_fds, wait_until

# A shell that starts the suite in the background without job control (``make test &``
# in a script, ``nohup ... &``) hands it SIGINT ignored, and Python then installs no
# KeyboardInterrupt for it: the tests that send themselves a real SIGINT would wait for
# one that never comes.  Start from what an interpreter started in the foreground has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Bytecode caches on, even where the environment turns them off (PYTHONDONTWRITEBYTECODE,
# set in many container images): the suite starts a few hundred Python processes
# (``pylibos run``, the benchmark's measuring processes, the CLI), and each would compile
# pylibos from source again; pytest would rewrite every test module's asserts again on
# every run.  Together that is about a tenth of the suite's CPU time.  Set before any test
# module is imported, so pytest caches its rewritten modules too.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def os_threads() -> int:
    """Threads of this process as the kernel sees them: PAL threads are started with
    ``_thread.start_new_thread`` and are not in ``threading.enumerate()``."""
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(autouse=True, scope="session")
def matplotlib_fonts_loaded() -> None:
    """matplotlib keeps the font files it has used open for the life of the process (a
    cache); load them once up front so the per-module fd check sees only our own fds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("µs ÷ ≤ ≥ warm-up")
    fig.canvas.draw()
    plt.close(fig)


@pytest.fixture(autouse=True, scope="module")
def no_leaks_per_module() -> Iterator[None]:
    """Counts fds and threads before and after each test module."""
    fds_before = open_fds()
    threads_before = set(threading.enumerate())
    os_before = os_threads()
    yield
    # Threads that have finished their work may take a moment to be gone: nothing
    # signals that, so it is polled for, within a bound (the asserts below then judge).
    wait_until(
        lambda: set(threading.enumerate()) <= threads_before and os_threads() <= os_before, 5.0
    )
    leaked_threads = [t for t in threading.enumerate() if t not in threads_before]
    leaked_fds = open_fds() - fds_before
    assert not leaked_threads, f"threads left running: {leaked_threads}"
    assert os_threads() <= os_before, f"OS threads left running: {os_threads() - os_before}"
    assert not leaked_fds, f"fds left open: {sorted(leaked_fds)}"


@pytest.fixture
def socketpairs() -> Iterator[MakePair]:
    """Makes connected pairs of UNIX stream sockets; all are closed at the end."""
    made: list[tuple[socket.socket, socket.socket]] = []

    def make() -> tuple[socket.socket, socket.socket]:
        made.append(socket.socketpair())
        return made[-1]

    yield make
    for a, b in made:
        a.close()
        b.close()


@pytest.fixture
def pair(socketpairs: MakePair) -> tuple[socket.socket, socket.socket]:
    """A connected pair of UNIX stream sockets, closed at the end."""
    return socketpairs()


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    ends = Pipe()
    yield ends
    for fd in (ends.r, ends.w):
        if fd >= 0:
            os.close(fd)
