"""A cloned thread's event at its exit, against the pool closing under it.

The thread's exit work (``LibOS._thread_exit``, through ``EventFactory.release``) puts
its event back in the pool without a lock, and tests whether the factory was closed only
after the append: a factory that closes before or during the exit must still see every
such event destroyed, none left
in a pool no one will empty.  A shutdown whose timeout ran out before a thread ended is
the way this happens: the thread ends later, after the sweep took it out of the table
and the factory closed."""

from __future__ import annotations

import inspect
import sys
import threading
from typing import Any

import pytest

from libos_support import BOUND, booted, held_where
from pylibos import pal
from pylibos.libos import LibOS
from pylibos.libos import _event as _event_module
from pylibos.libos._event import EventFactory

_EXIT = LibOS._thread_exit
_RELEASE = EventFactory.release


def _line_in(fn: Any, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    (offset,) = [i for i, line in enumerate(lines) if text in line]
    return first + offset


@pytest.mark.parametrize("pool", [False, True], ids=["no-pool", "pool"])
def test_a_thread_ending_after_shutdown_gave_up_on_it_closes_its_event(pool: bool) -> None:
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw", pool=pool)
    go = threading.Event()
    thread = None
    try:
        thread = libos.clone(go.wait, BOUND)
        libos.shutdown(timeout=0.05)  # the thread waits on: out of the table, event closed
        assert thread.is_alive() and thread.event.closed
        assert thread not in libos.threads()
        go.set()
        assert thread.join(BOUND)
        assert thread.event.closed
        assert libos._factory._free == []
        assert libos._running == {}
    finally:
        go.set()
        if thread is not None:
            thread.join(BOUND)
        libos.shutdown()
        host.shutdown()


def test_a_factory_closed_before_a_thread_exits_takes_no_event_back() -> None:
    """No test of the factory's state before the append: one closed by then is seen
    after it, and the event is destroyed, not pooled."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw", pool=True)
    go = threading.Event()
    thread = None
    try:
        thread = libos.clone(go.wait, BOUND)
        libos._factory.close()
        go.set()
        assert thread.join(BOUND)
        assert thread.event.closed
        assert libos._factory._free == []
    finally:
        go.set()
        if thread is not None:
            thread.join(BOUND)
        libos.shutdown()
        host.shutdown()


def test_an_event_pooled_while_the_factory_closes_is_destroyed() -> None:
    """The thread is held (a tracer, in the thread itself) right after it appended its
    event to the pool and before it tests whether the factory closed; the factory
    closes then, taking that pool.  The thread goes on: the event is destroyed (by the
    close, or by the thread seeing it closed), and the new pool holds nothing."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw", pool=True)
    check = _line_in(_RELEASE, "if not self._closed:")
    tracer, held, go = held_where(_RELEASE.__code__, lambda frame: frame.f_lineno == check)
    thread = None
    try:
        thread = libos.clone(sys.settrace, tracer)  # traced from here on, exit work too
        assert held.wait(BOUND)
        assert thread.event in libos._factory._free  # appended, not yet tested
        libos._factory.close()
        go.set()
        assert thread.join(BOUND)
        assert thread.event.closed
        assert libos._factory._free == []
    finally:
        go.set()
        if thread is not None:
            thread.join(BOUND)
        libos.shutdown()
        host.shutdown()


def test_a_full_pool_takes_no_more_at_a_threads_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound holds on the exit path too: with the pool at its limit, an exiting
    thread's event is destroyed."""
    monkeypatch.setattr(_event_module, "POOL_LIMIT", 1)
    with booted("sgx", "raw", pool=True) as libos:
        go = threading.Event()
        first, second = libos.clone(go.wait, BOUND), libos.clone(go.wait, BOUND)
        go.set()
        assert first.join(BOUND) and second.join(BOUND)
        assert libos._factory.pooled == 1
        # One went back (the first to end), the other was destroyed.
        assert libos._factory._free[0] in (first.event, second.event)
        assert first.event.closed != second.event.closed


def test_an_event_closed_before_its_thread_ends_is_not_pooled() -> None:
    """A thread whose event was destroyed under it (a program that misuses it) hands
    the next thread no closed event."""
    with booted("sgx", "raw", pool=True) as libos:
        first = libos.clone(lambda: libos.current_thread().event.destroy())
        assert first.join(BOUND)
        assert first.event.closed and libos._factory.pooled == 0
        seen: list[bool] = []
        second = libos.clone(lambda: seen.append(libos.current_thread().event.closed))
        assert second.join(BOUND)
        assert seen == [False]
