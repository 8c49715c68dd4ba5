"""An adoption or a clone whose event is made while the LibOS shuts down leaves nothing
behind it: the LibOS refuses it or undoes it."""

from __future__ import annotations

import threading

import pytest

from libos_support import BOUND, booted
from pylibos.libos._event import PollableEvent
from pylibos.pal import ShutDownError


@pytest.mark.parametrize("way", ["adopt", "clone"])
def test_a_thread_whose_event_is_made_during_shutdown_is_refused(way: str) -> None:
    """A thread the LibOS adopts (a foreign thread's first use) or clones, which passed the
    shut-down check and is making its event while shutdown runs: once shutdown is over it
    fails saying so, no thread is in the table and its event is closed."""
    with booted("direct", "eventfd") as libos:
        factory = libos._factory
        real_create = factory.create
        inside, go, stop = threading.Event(), threading.Event(), threading.Event()
        made: list[PollableEvent] = []
        outcome: list[object] = []

        def slow_create() -> PollableEvent:
            event = real_create()
            made.append(event)
            inside.set()
            go.wait(BOUND)
            return event

        def use() -> None:
            try:
                if way == "adopt":
                    outcome.append(libos.current_thread())
                else:
                    outcome.append(libos.clone(stop.wait, BOUND))
            except BaseException as exc:
                outcome.append(exc)

        factory.create = slow_create  # type: ignore[method-assign]
        thread = threading.Thread(target=use)
        thread.start()
        try:
            assert inside.wait(BOUND)
            libos.shutdown(0.5)
        finally:
            go.set()
            thread.join(BOUND)
        left = libos.threads()
        stop.set()
        for t in left:
            t.join(BOUND)
        assert not thread.is_alive()
        # clone speaks errno, as every LibOS call does: EBADF naming the shutdown
        assert isinstance(outcome[0], ShutDownError if way == "adopt" else OSError), outcome
        assert "shut down" in str(outcome[0])
        assert left == [], f"after shutdown the table holds {left}"
        assert made and made[0].closed
