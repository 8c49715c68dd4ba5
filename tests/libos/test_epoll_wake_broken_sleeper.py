"""A change to an epoll wakes the threads asleep in its ``poll`` at the end of the
change's critical section.  A sleeper whose event the host broke, and that cannot be
given a new channel (the host refuses descriptors), is left to its own recheck: the
change itself succeeds, and the program never gets another thread's channel failure."""

from __future__ import annotations

import os
import select
import socket
import threading
from typing import Any

import pytest

from libos_support import BOUND, booted
from pylibos import pal
from pylibos.libos import _interest


def test_a_register_succeeds_when_a_sleepers_event_cannot_be_woken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sleeper rechecks only after BOUND seconds: it wakes on its event alone, so its
    # broken channel is met by the register's wake, not by its own recheck first.
    monkeypatch.setattr(_interest, "_RECHECK_US", int(BOUND * 1_000_000))
    with booted("direct", "pipe") as libos:
        ep = libos.epoll()
        a, b = socket.socketpair()
        asleep = threading.Event()
        events: list[object] = []
        got: list[list[tuple[int, int]]] = []

        def sleeper() -> None:
            events.append(libos.current_thread().event)
            asleep.set()
            got.append(ep.poll(BOUND))

        t = threading.Thread(target=sleeper)
        t.start()
        try:
            assert asleep.wait(BOUND)
            while not ep._inst.waiters:  # type: ignore[union-attr]  # (bounded: BOUND)
                t.join(0.01)
                assert t.is_alive()
            event: Any = events[0]
            os.close(event._write._fd)  # the host closes the channel under the PAL
            remake = event._remake

            def refused() -> Any:  # and has no descriptor for a new one (the LibOS's own
                raise pal.PalError(pal.PalErrorCode.TOOMANY, "no descriptor")  # threads
                # may free one at any moment, so RLIMIT_NOFILE alone is not deterministic)

            event._remake = refused
            try:
                ep.register(a, select.EPOLLIN)  # the wake fails; the register stands
            finally:
                event._remake = remake
            assert t.is_alive()  # not woken: its channel could not be rebuilt
            ep.unregister(a)  # a change with a channel to be had: the sleeper is woken
            b.send(b"x")
            ep.register(a, select.EPOLLIN)
            t.join(BOUND)
            assert not t.is_alive()
            assert got == [[(a.fileno(), select.EPOLLIN)]]
        finally:
            if t.is_alive():
                ep.close()  # wakes it
                t.join(BOUND)
            ep.close()
            a.close()
            b.close()
