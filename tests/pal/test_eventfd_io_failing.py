"""An eventfd read or write whose system call fails (EAGAIN on a nonblocking eventfd)
while a racing close leaves the release to it: a Ctrl-C at any opcode, the ``finally``
included, still takes the handle out of ``_io`` and releases it, so its descriptor is
closed and ``_closes`` empties (shutdown then closes the eventfd registry)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal._interrupts import owed

from ._pal_support import open_fds
from .test_pal_sections import _interrupt_at_opcode, _opcodes


@pytest.mark.parametrize("io", ["write", "read"])
def test_interrupt_at_every_opcode_of_a_failing_eventfd_io_racing_its_close(
    io: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wherever a Ctrl-C lands in the PAL's I/O and close, the I/O failing: the handle
    ends closed with its descriptor, no I/O or close stays recorded, and shutdown then
    closes every descriptor it made (the registry's epoll included)."""
    files = ("pal/_host.py", "pal/_eventfd.py")
    before = open_fds()
    host = pal.open_host("direct")
    try:
        host.close(host.stream_open("eventfd:"))  # the registry, made once
        with_registry = open_fds()
        name = "eventfd_write" if io == "write" else "eventfd_read"
        real = getattr(os, name)
        real_write = os.eventfd_write
        current: list[pal.Handle] = []

        def closing_first(fd: int, *args: Any) -> Any:
            handle = current.pop()
            host.close(handle)  # another thread's close, while this I/O is under way
            if io == "write":
                return real(fd, 0xFFFFFFFFFFFFFFFE)  # full: EAGAIN (nonblocking)
            return real(fd)  # empty: EAGAIN (nonblocking)

        def run(handle: pal.Handle) -> None:
            current[:] = [handle]
            try:
                if io == "write":
                    host.write(handle, pal.EVENT_TOKEN)
                else:
                    host.read(handle, 8)
            except pal.PalError:
                pass  # the I/O failed: expected

        def fresh() -> pal.Handle:
            handle = host.stream_open("eventfd:", nonblocking=True)
            if io == "write":
                real_write(handle._fd, 1)  # so that the full write overflows
            return handle

        monkeypatch.setattr(os, name, closing_first)
        probe = fresh()
        opcodes = _opcodes(lambda: run(probe), files)
        assert probe.closed and probe._fd not in open_fds()
        stuck: list[int] = []
        for n in range(1, opcodes + 1):
            handle = fresh()
            _interrupt_at_opcode(lambda: run(handle), n, files)  # noqa: B023
            if not handle.closed:  # interrupted before the I/O (and its close) began
                host.close(handle)
            if host._io or host._closes or handle._fd in open_fds():
                stuck.append(n)
                # Clean up what the test can: drop the stale record and release.
                host._io.clear()
                host._io_done(handle)
            assert not owed[0]
        assert open_fds() == with_registry
        assert not stuck, f"interrupts at opcodes {stuck} left the handle recorded in _io"
    finally:
        monkeypatch.undo()
        host.shutdown()
    assert open_fds() <= before
