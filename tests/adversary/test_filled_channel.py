"""Defect 1: a host that fills an event channel cannot make ``set`` block.

The host copies the write end of an event's channel and writes into it until the kernel
takes no more.  A ``set`` then finds no room: the channel is full, which already wakes
every sleeper, so the set is done.  Before, the write end blocked: ``set`` waited for
room for ever, holding the event's lock, and ``clear``, ``destroy`` and the LibOS's
shutdown queued behind it.
"""

from __future__ import annotations

import threading
import time

import pytest

from libos_support import BOUND, booted
from pylibos.libos import PollableEvent

from .hostile import HostileHost

QUICK = 2.0
"""Seconds within which an operation that must not wait for the host has to return."""


def _returns_quickly(fn: object, what: str) -> None:
    """Run ``fn`` on a thread; fail if it has not returned within QUICK seconds."""
    done = threading.Event()
    error: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            error.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    t.start()
    assert done.wait(QUICK), f"{what} blocked on a channel the host filled"
    t.join(BOUND)
    assert not error, error
    assert time.monotonic() - started < QUICK


def _fill(hostile: HostileHost, event: PollableEvent) -> int:
    write = event._write
    if write._sock is None:  # an eventfd: the most its counter holds
        hostile.do("eventfd_max", hostile.grab(write._fd))
        return 1
    return int(hostile.do("fill", hostile.grab(write._fd)))


@pytest.mark.parametrize(
    ("kind", "events"),
    [("sgx", "raw"), ("direct", "raw"), ("sgx", "pipe"), ("direct", "pipe"), ("sgx", "eventfd")],
)
def test_set_on_a_filled_channel_returns_at_once(
    hostile: HostileHost, kind: str, events: str
) -> None:
    with booted(kind, events) as libos:
        event = libos.create_pollable_event()
        try:
            assert _fill(hostile, event) > 0
            _returns_quickly(event.set, "set")
            assert event.is_set() and event.wait(0)
            _returns_quickly(event.clear, "clear")
            assert not event.is_set()
            assert not event.wait(0.05), "a clear event woke a waiter for good"
            # It still works: a waiter on another thread sees a set.
            got: list[bool] = []
            t = libos.clone(lambda: got.append(event.wait(BOUND)))
            _returns_quickly(event.set, "set after clear")
            assert t.join(BOUND) and got == [True]
        finally:
            _returns_quickly(event.destroy, "destroy")


@pytest.mark.parametrize("events", ["raw", "pipe"])
def test_shutdown_is_not_held_by_a_filled_worker_channel(hostile: HostileHost, events: str) -> None:
    """The async worker's channel is filled; ``stop`` sets it; shutdown ends in bound."""
    with booted("sgx", events) as libos:
        assert libos._async is not None
        _fill(hostile, libos._async._event)
        fired = threading.Event()
        libos.install_async_event(0.01, fired.set)  # a set on the full channel
        assert fired.wait(BOUND)
        _returns_quickly(libos.shutdown, "LibOS.shutdown")
