"""The thread start's steps that take no Python lock (the event pool, the thread table,
the hook's thread count), each against its racer at every line: a ``close`` of the pool
in the middle of a ``release`` or a ``create``, and many threads at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import BOUND
from pylibos.libos import LibOS, LibOSThread, install
from pylibos.libos._event import EventFactory, PollableEvent
from pylibos.libos._thread import ThreadTable
from pylibos.pal import Host, open_host


def _at_line(code: CodeType, n: int, action: Callable[[], object], work: Callable[[], Any]) -> Any:
    """Run ``work`` with ``action`` run once at the ``n``-th line event of ``code`` (in
    this thread: what another thread could do at that moment, with the GIL switched
    there).  Returns what ``work`` returned and whether ``action`` ran."""
    count = 0
    ran = False

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count, ran
        if frame.f_code is not code:
            return None
        if event == "line":
            count += 1
            if count == n:
                ran = True
                action()
        return tracer

    sys.settrace(tracer)
    try:
        result = work()
    finally:
        sys.settrace(None)
    return result, ran


def _pooled(host: Host, count: int) -> EventFactory:
    factory = EventFactory(host, "eventfd", pool=True)
    events = [factory.create() for _ in range(count)]
    for event in events:
        factory.release(event)
    return factory


def _close_at_every_line(
    code: CodeType, pooled: int, work: Callable[[EventFactory], PollableEvent], *, gone: bool
) -> int:
    """For each line of ``code`` in turn: a factory pooling ``pooled`` events runs
    ``work`` with a ``close`` at that line; then the event ``work`` dealt with must be
    destroyed (``gone``) or else is the caller's, which gives it up (as the LibOS does,
    finding itself shut down), and nothing may stay pooled or open.  Returns the lines
    tried."""
    host = open_host("sgx")
    try:
        n = 1
        while True:
            factory = _pooled(host, pooled)
            event, ran = _at_line(code, n, factory.close, lambda: work(factory))  # noqa: B023
            if not ran:
                factory.close()
            assert not factory._free, n
            assert event.closed or not gone, n
            event.destroy()
            assert host.open_handles() == [], n
            if not ran:
                return n
            n += 1
    finally:
        host.shutdown()


def test_a_release_racing_close_leaves_no_event_open() -> None:
    """Whatever line of ``release`` a ``close`` lands on, the released event ends up
    destroyed and nothing stays in the pool."""

    def release(factory: EventFactory) -> PollableEvent:
        event = factory.create()
        factory.release(event)
        return event

    assert _close_at_every_line(EventFactory.release.__code__, 2, release, gone=True) > 5


def test_a_create_racing_close_leaks_nothing() -> None:
    """Whatever line of ``create`` a ``close`` lands on: the pool is emptied and
    destroyed, and the event ``create`` hands out is the caller's to give up (the LibOS
    does, finding itself shut down); nothing else stays open."""
    lines = _close_at_every_line(EventFactory.create.__code__, 3, EventFactory.create, gone=False)
    assert lines > 3


def test_pool_create_and_release_from_many_threads() -> None:
    """Threads taking and giving back pooled events at once: no event is handed to two
    holders, and every event is back in the pool at the end."""
    host = open_host("sgx")
    factory = _pooled(host, 8)
    held: set[int] = set()
    clash: list[int] = []
    guard = threading.Lock()  # the test's own bookkeeping, not the pool's
    start = threading.Barrier(4)

    def churn() -> None:
        start.wait(BOUND)
        for _ in range(300):
            event = factory.create()
            with guard:
                if id(event) in held:
                    clash.append(id(event))
                held.add(id(event))
            assert not event.is_set()  # handed out clear
            event.set()  # left set by its holder: the next one gets it cleared
            with guard:
                held.discard(id(event))
            factory.release(event)

    try:
        threads = [threading.Thread(target=churn) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(BOUND)
        assert not clash
        assert len({id(e) for e in factory._free}) == len(factory._free) >= 8
        assert not any(e.is_set() for e in factory._free)
    finally:
        factory.close()
        host.shutdown()


def test_thread_table_from_many_threads() -> None:
    table = ThreadTable()
    start = threading.Barrier(5)
    seen_bad: list[object] = []

    def add_remove(base: int) -> None:
        start.wait(BOUND)
        for i in range(2000):
            thread = LibOSThread(table.new_tid(), f"t{base}-{i}")
            table.add(thread)
            assert table.get(thread.tid) is thread
            table.remove(thread)

    def read() -> None:
        start.wait(BOUND)
        for _ in range(2000):
            for t in table.all():
                if not isinstance(t, LibOSThread):
                    seen_bad.append(t)

    threads = [threading.Thread(target=add_remove, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND)
    assert not seen_bad and len(table) == 0
    assert table.new_tid() == 4 * 2000 + 1  # every tid handed out once


@pytest.mark.parametrize("pool", [False, True], ids=["raw", "raw+pool"])
def test_hook_counts_every_thread_started_from_many_threads(pool: bool) -> None:
    host = open_host("sgx")
    libos = LibOS(host, "raw", pool)
    ran: list[int] = []
    start = threading.Barrier(4)

    def starter() -> None:
        start.wait(BOUND)
        for _ in range(25):
            t = threading.Thread(target=ran.append, args=(1,))
            t.start()
            t.join(BOUND)

    try:
        with install(libos) as hook:
            starters = [threading.Thread(target=starter) for _ in range(4)]
            for t in starters:
                t.start()
            for t in starters:
                t.join(BOUND)
            assert len(ran) == 4 * 25
            assert hook.threads_created == 4 * 25 + 4  # the starters went through it too
    finally:
        libos.shutdown()
        host.shutdown()
