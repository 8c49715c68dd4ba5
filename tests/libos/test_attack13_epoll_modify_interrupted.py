"""A Ctrl-C inside ``modify`` turning a level-triggered entry edge-triggered.

Natively ``modify`` is one ``epoll_ctl``: a Ctrl-C lands before it (the entry unchanged)
or after it (the entry changed and, being edge-triggered, queued when data arrives).
Either way data sent afterwards is reported by the next poll."""

from __future__ import annotations

import inspect
import select
import signal
import socket
from types import FrameType
from typing import Any

import pytest

from libos_support import booted, interrupted, tracing_only
from pylibos.libos import _interest
from pylibos.pal import _interrupts

IN, ET = select.EPOLLIN, select.EPOLLET


def _line_of(text: str) -> int:
    lines, start = inspect.getsourcelines(_interest.EpollInstance.modify)
    return start + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize("config", [("direct", "pipe"), ("sgx", "raw")], ids=lambda c: "/".join(c))
def test_a_ctrl_c_after_the_mask_changed_loses_no_edge(config: tuple[str, str]) -> None:
    # Native: poll(0) after the data -> [(a, EPOLLIN)] whether or not the
    # interrupted modify took effect.  The LibOS: EpollInstance.modify
    # (libos/_interest.py) sets entry.mask = eventmask under self.lock, then adds the
    # entry to the edge watch in a try whose handler restores the mask.  A Ctrl-C
    # delivered after the store and before that try (here at "entry.disabled = False";
    # a real signal is run at the lock's __exit__ call that ends the block) leaves the
    # entry edge-triggered but never added to the watch: poll(0) returns [], and every
    # later edge is lost too.  The change and the watch are not one critical section.
    line = _line_of("entry.disabled = False")
    fired: list[int] = []

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line and not fired:
            fired.append(line)
            _interrupts._on_sigint(signal.SIGINT, frame)
        return local

    a, b = socket.socketpair()
    fd = a.fileno()
    with a, b, booted(*config) as libos:
        ep = libos.epoll()
        try:
            ep.register(a, IN)
            cut = interrupted(
                lambda: ep.modify(a, IN | ET),
                tracing_only(_interest.EpollInstance.modify.__code__, local),
            )
            assert fired and cut
            b.send(b"x")
            got = ep.poll(0)
        finally:
            ep.close()
    assert got == [(fd, IN)]
