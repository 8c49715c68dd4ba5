"""``LibOS.shutdown`` while a clone on another thread waits for a thread slot (outside
its critical section).

A clone on a shut-down LibOS is refused (``ShutDownError``); the clone path tests
``_closed`` in its section, before the host thread may start, and again in the section
it tries the start in after each wait for a slot.  Before, the wait went on into the
start without that test: a clone the scheduler held in the wait past ``shutdown``'s
timeout (``shutdown`` found it under way, waited until the time was up, then closed its
event and took it out of the table) started its thread on the shut-down LibOS, with the
event ``shutdown`` closed, and returned as if nothing happened.
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

        # The cloner is held at the first line of its wait for a slot (its SlotWait).
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
