"""Shared fixtures: every test module leaves the process with the fds and threads it found."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def os_threads() -> int:
    """Threads of this process as the kernel sees them: PAL threads are started with
    ``_thread.start_new_thread`` and are not in ``threading.enumerate()``."""
    return len(os.listdir("/proc/self/task"))


def _settle(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.01)


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
    _settle(lambda: set(threading.enumerate()) <= threads_before and os_threads() <= os_before)
    leaked_threads = [t for t in threading.enumerate() if t not in threads_before]
    leaked_fds = open_fds() - fds_before
    assert not leaked_threads, f"threads left running: {leaked_threads}"
    assert os_threads() <= os_before, f"OS threads left running: {os_threads() - os_before}"
    assert not leaked_fds, f"fds left open: {sorted(leaked_fds)}"
