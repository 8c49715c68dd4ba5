"""Defect 7: when an event replaces a broken channel, its sleepers on the old channel
wake.

The host keeps copies of both ends of an event's pipe and closes the PAL's write end.
A ``set`` then finds its descriptor gone and replaces the channel.  The sleeper is still
polling the old read end, whose far end the host holds open, so no end of stream comes.
Before, it slept on (until its own timeout, or for ever).  Now the old read end is shut
down before it goes, which wakes every poller of it.  An eventfd has no far end to shut;
a sleeper there looks again after ``RECHECK_S`` at most (shortened here, as for every
attack in this folder; the pipe cases keep the real one, and must wake well before it).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from libos_support import BOUND, booted, spying
from pylibos.libos import _event

from .hostile import HostileHost

# The pipe cases must wake well before a sleeper would look again: they keep RECHECK_S.
PIPES = pytest.mark.keep_recheck


@pytest.mark.parametrize(
    ("events", "bound"),
    [
        pytest.param("raw", 1.5, marks=PIPES),
        pytest.param("pipe", 1.5, marks=PIPES),
        ("eventfd", None),
    ],
)
def test_sleeper_on_the_old_channel_wakes(
    hostile: HostileHost, events: str, bound: float | None
) -> None:
    with booted("sgx", events) as libos:
        event = libos.create_pollable_event()
        try:
            read, write = event.read_handle, event._write
            for handle in {read, write}:
                hostile.grab(handle._fd)  # the host holds both ends open
            woke: list[float] = []
            asleep = threading.Event()

            def sleeper() -> None:
                woke.append(float(event.wait(BOUND)))
                woke.append(time.monotonic())

            with spying(libos.host) as spy:
                spy.before = lambda handles: asleep.set() if read in handles else None
                t = libos.clone(sleeper)
                assert asleep.wait(BOUND)
                assert spy.wait_for(lambda calls: any(read in h for _, h in calls))
            os.close(write._fd)  # the host closes the PAL's write end
            set_at = time.monotonic()
            event.set()
            assert event.rebuilt == 1
            assert t.join(BOUND)
            assert woke[0] == 1.0, "the sleeper did not see the set"
            took = woke[1] - set_at
            # Within the look-again (the shortened one) and a margin, not the wait's BOUND.
            limit = bound if bound is not None else _event._RECHECK_US / 1e6 + 2.0
            assert took < limit, f"the sleeper woke {took:.2f} s after the set"
        finally:
            event.destroy()
