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

import os
import threading

import pytest

from libos_support import interrupted, sigint_at_line
from pylibos.libos import LibOS, PollableEvent
from pylibos.pal import open_host

MAIN = threading.main_thread().ident
_REBUILD = PollableEvent._rebuild.__code__


def _rebuild_cut_short(events: str, n: int) -> tuple[int | None, list[str]]:
    host = open_host("sgx")
    libos = LibOS(host, events)
    fired: list[int] = []
    try:
        before = set(host.open_handles())
        event = libos.create_pollable_event()
        os.close(event._write._fd)  # the host closes the PAL's descriptor
        came = interrupted(event.set, sigint_at_line(_REBUILD, n, fired))
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
