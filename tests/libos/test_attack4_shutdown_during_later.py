"""``LibOS.shutdown`` while a clone on another thread waits for a thread slot in the clone
path's slow way (``later()``, after its critical section).

A clone on a shut-down LibOS is refused (``ShutDownError``); the clone path tests
``_closed`` in its section, before the host thread may start.  The slow way starts the
host thread after that test, whenever its wait ends: a clone the host's scheduler holds
in that wait past ``shutdown``'s timeout (``shutdown`` finds it under way, waits for it
until the time is up, then closes its event and takes it out of the table) starts its
thread as soon as it runs again, on a LibOS shut down, with the event ``shutdown``
closed: its ``fn`` runs, the clone returns as if nothing happened, and the thread's exit
work releases that event after ``shutdown`` returned.  (With sgx pipes the same clone
waits for its event's handshake helper inside the section instead, and is refused.)
"""

from __future__ import annotations

import threading

import pytest

from libos_support import BOUND, held_where, run_traced
from pylibos.libos import LibOS, LibOSThread
from pylibos.pal import SgxHost, open_host
from pylibos.pal._slots import ThreadSlots

_AWAIT = ThreadSlots._await_slot.__code__


@pytest.mark.parametrize("events", ["raw", "eventfd"])
def test_a_clone_waiting_for_a_slot_does_not_start_after_shutdown(events: str) -> None:
    host = open_host("sgx", max_threads=4)  # main, the two workers, and one
    assert isinstance(host, SgxHost)
    host.slot_timeout = BOUND  # the wait outlives the shutdown below
    libos = LibOS(host, events)
    go = threading.Event()
    ran: list[int] = []
    outcome: list[LibOSThread | BaseException] = []
    cloner: threading.Thread | None = None
    holder: LibOSThread | None = None
    resume = threading.Event()
    try:
        holder = libos.clone(go.wait, BOUND)  # the last slot, on nothing shutdown wakes

        # The cloner is held at the first line of its wait for a slot (in later()).
        tracer, held, resume = held_where(_AWAIT, lambda frame: True)

        def clone() -> None:
            try:
                outcome.append(libos.clone(ran.append, 1))
            except BaseException as exc:
                outcome.append(exc)

        cloner = threading.Thread(target=run_traced, args=(clone, tracer))
        cloner.start()
        assert held.wait(BOUND)
        libos.shutdown(0.2)  # the holder does not end in time; the start is under way
        assert libos.closed and not outcome and not libos.threads()
        resume.set()  # the cloner runs again: the workers' slots are free
        cloner.join(BOUND)
        assert not cloner.is_alive()
        (got,) = outcome
        assert not isinstance(got, LibOSThread), "a clone started on a LibOS shut down"
        assert isinstance(got, OSError | RuntimeError), repr(got)
        assert ran == []
    finally:
        go.set()
        resume.set()
        if cloner is not None:
            cloner.join(BOUND)
        for thread in (holder, *outcome):
            if isinstance(thread, LibOSThread):
                thread.join(BOUND)
        libos.shutdown()
        host.shutdown()
