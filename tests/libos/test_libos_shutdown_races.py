"""An adoption or a clone whose event is made while the LibOS shuts down leaves nothing
behind it: the LibOS refuses it or undoes it."""

from __future__ import annotations

import threading

from libos_support import BOUND, booted
from pylibos.libos._event import PollableEvent
from pylibos.pal import ShutDownError


def test_an_adoption_finishing_after_shutdown_is_undone() -> None:
    with booted("direct", "eventfd") as libos:
        factory = libos._factory
        real_create = factory.create
        inside, go = threading.Event(), threading.Event()
        made: list[PollableEvent] = []
        outcome: list[BaseException | None] = []

        def slow_create() -> PollableEvent:
            event = real_create()
            made.append(event)
            inside.set()
            go.wait(BOUND)
            return event

        def foreign() -> None:
            try:
                libos.current_thread()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        factory.create = slow_create  # type: ignore[method-assign]
        thread = threading.Thread(target=foreign)
        thread.start()
        try:
            assert inside.wait(BOUND)
            libos.shutdown(0.5)
        finally:
            go.set()
            thread.join(BOUND)
        assert isinstance(outcome[0], ShutDownError), outcome
        assert libos.threads() == []
        assert made and made[0].closed


def test_a_clone_finishing_after_shutdown_leaves_nothing() -> None:
    """The same race on the clone path: a clone that passed the ``_closed`` check before
    shutdown and makes its event while shutdown runs.  It should fail with ShutDownError
    (or at least leave no thread in the table and no event open) once shutdown is over."""
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

        def cloner() -> None:
            try:
                outcome.append(libos.clone(stop.wait, BOUND))
            except BaseException as exc:
                outcome.append(exc)

        factory.create = slow_create  # type: ignore[method-assign]
        thread = threading.Thread(target=cloner)
        thread.start()
        try:
            assert inside.wait(BOUND)
            libos.shutdown(0.5)
        finally:
            go.set()
            thread.join(BOUND)
        left = libos.threads()
        event_closed = made[0].closed
        stop.set()
        for t in left:
            t.join(BOUND)
        assert isinstance(outcome[0], ShutDownError) or (not left and event_closed), (
            f"clone returned {outcome[0]!r}; after shutdown the table holds {left}, "
            f"its event closed: {event_closed}"
        )
