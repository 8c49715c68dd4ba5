"""Defect 8: forged bytes cost a bounded number of host calls per byte.

The host floods an event's raw pipe with 1 MB while a thread sleeps on the event.  The
sleeper drains what is not ours.  Before, it read 64 bytes a call: 16,384 recv host
calls for the megabyte.  Now it reads 64 KiB a call.
"""

from __future__ import annotations

import pytest

from libos_support import BOUND, booted, readable, wait_until

from .hostile import HostileHost

MB = 1 << 20


@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_a_megabyte_flood_costs_few_recvs(hostile: HostileHost, kind: str) -> None:
    with booted(kind, "raw") as libos:
        host = libos.host
        event = libos.create_pollable_event()
        try:
            woke: list[bool] = []
            t = libos.clone(lambda: woke.append(event.wait(BOUND * 3)))
            copy = hostile.grab(event._write._fd)
            recvs, polls = host.calls["recv"], host.calls["poll"]
            hostile.do("flood", copy, MB)

            def flooded() -> bool:
                sent, done = hostile.do("flood_done").split()
                return done == "1" and int(sent) >= MB and not readable(host, event)

            assert wait_until(flooded, BOUND * 2), "the flood was not drained"
            recvs, polls = host.calls["recv"] - recvs, host.calls["poll"] - polls
            assert not woke, "a flood of forged bytes ended a wait"
            event.set()
            assert t.join(BOUND) and woke == [True]
            # Far below the 16,384 recvs of 64-byte reads, whatever the flood's pace.
            assert recvs <= 512, f"{recvs} recv host calls for 1 MB"
            assert polls <= 512, f"{polls} poll host calls for 1 MB"
        finally:
            event.destroy()
