"""The clone path builds its ``LibOSThread`` (``LibOS._clone``) and a new event
(``EventFactory.create``) in place, without calling their ``__init__``: each must hold
what its ``__init__`` gives it, for every configuration."""

from __future__ import annotations

import threading

from libos_support import BOUND
from pylibos.libos import LibOS, LibOSThread, PollableEvent


def test_a_new_event_holds_what_its_init_would_give_it(libos: LibOS) -> None:
    factory = libos._factory
    event = libos.create_pollable_event()
    try:
        made = PollableEvent(libos.host, factory.kind, event._read, event._write, factory._channel)
        own, expected = dict(vars(event)), dict(vars(made))
        assert type(own.pop("_lock")) is type(expected.pop("_lock"))
        assert own == expected
        assert not event.is_set() and not event.closed
        event.set()
        assert event.wait(BOUND) and event.is_set()
        event.clear()
        assert not event.wait(0.0)
    finally:
        event.destroy()
    assert event.closed


def test_a_cloned_thread_holds_what_its_init_would_give_it(libos: LibOS) -> None:
    go = threading.Event()
    thread = libos.clone(go.wait, BOUND, name="in-place")
    try:
        made = LibOSThread(thread.tid, "in-place")
        own = vars(thread)
        assert {k: own[k] for k in vars(made)} == vars(made)
        assert set(own) - set(vars(made)) <= {"event", "_pal", "_unraisable", "_error_seen"}
        assert thread.name == "in-place" and thread.is_alive()
        assert libos.thread_by_tid(thread.tid) is thread
    finally:
        go.set()
    assert thread.join(BOUND)
    assert libos.thread_by_tid(thread.tid) is None
