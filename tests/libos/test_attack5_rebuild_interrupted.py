"""A Ctrl-C at each line of a pollable event's channel rebuild.

The host breaks the channel of an event the main thread uses (it closes the PAL's
descriptor); the main thread's ``set`` finds it broken and rebuilds it
(``PollableEvent._rebuild``).  The PAL's own SIGINT handler is called (as the
interpreter would run it) at each line of the rebuild.  Afterwards the event is
destroyed: nothing it made may stay open on the host, whatever line was hit.

Before the fix (failed on 777d49b):
``_rebuild`` makes the new channel, then stores it, then closes the
old handles, with no critical section around the three: a Ctrl-C just after the new
channel is made (the ``_remake`` call returns and the handler runs) leaves it held
by nobody (the event still holds the old one, which ``destroy`` closes); a Ctrl-C
after the new channel is stored and before the old handles are closed leaves those
open.  Either stays on the host until it shuts down."""

from __future__ import annotations

import inspect
import os
import signal
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import interrupted
from pylibos.libos import LibOS, PollableEvent
from pylibos.pal import _interrupts, open_host

MAIN = threading.main_thread().ident
_REBUILD = PollableEvent._rebuild.__code__


def _with_lines(code: CodeType) -> set[int]:
    """Lines opening a ``with`` block: their exit is given the line again, at a step
    where the interpreter runs no signal handler (not a place a Ctrl-C can land)."""
    lines, first = inspect.getsourcelines(code)
    return {first + i for i, line in enumerate(lines) if line.lstrip().startswith("with ")}


def _interrupt_at_line(
    code: CodeType, n: int, fired: list[int]
) -> Callable[[FrameType, str, Any], Any]:
    count = 0
    skip = _with_lines(code)

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line" and threading.get_ident() == MAIN and frame.f_lineno not in skip:
            count += 1
            if count == n:
                fired.append(frame.f_lineno)
                _interrupts._on_sigint(signal.SIGINT, frame)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return tracer


def _rebuild_cut_short(events: str, n: int) -> tuple[int | None, list[str]]:
    host = open_host("sgx")
    libos = LibOS(host, events)
    fired: list[int] = []
    try:
        before = set(host.open_handles())
        event = libos.create_pollable_event()
        os.close(event._write._fd)  # the host closes the PAL's descriptor
        came = interrupted(event.set, _interrupt_at_line(_REBUILD, n, fired))
        assert came == bool(fired), fired
        event.destroy()
        left = [f"{h.uri} fd {h._fd}" for h in set(host.open_handles()) - before]
    finally:
        libos.shutdown()
        host.shutdown()
    return (fired[0] if fired else None), left


@pytest.mark.parametrize("events", ["eventfd", "raw"])
def test_a_rebuild_cut_short_leaves_no_channel_open(events: str) -> None:
    leaks: dict[int, list[str]] = {}
    n = 1
    while True:
        line, left = _rebuild_cut_short(events, n)
        if line is None:
            break
        if left:
            leaks[line] = left
        n += 1
    assert n > 5, "no interrupt landed"
    assert not leaks, f"handles left open after the event was destroyed, by line: {leaks}"
