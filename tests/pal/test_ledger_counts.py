"""The gate's counts take no lock: each is one step for the interpreter.

Threads making host calls at once, on their own accounts and on one they share (a
handshake helper counts into its creator's), lose no count by kind, in total or per
thread.  The interpreter is made to switch threads as often as it can meanwhile."""

from __future__ import annotations

import threading
import types

from pylibos import pal
from pylibos.pal import EVENT_TOKEN, _ledger

from ._pal_support import WAIT_S, switching_often

CALLS = 400  # host calls per thread
THREADS = 4  # of each kind: with their own account, and helpers sharing the creator's


def test_the_counting_step_is_the_c_helper() -> None:
    """Atomic because no Python code runs inside it: the C function, not a fallback."""
    assert isinstance(_ledger._count, types.BuiltinFunctionType)


def test_concurrent_host_calls_lose_no_count() -> None:
    host = pal.open_host("direct")
    handle = host.stream_open("eventfd:", nonblocking=True)
    go = threading.Event()
    accounts: list[int] = []

    def work() -> None:
        assert go.wait(WAIT_S)
        mine = host.thread_calls()
        for _ in range(CALLS):
            host.write(handle, EVENT_TOKEN)
        accounts.append(host.thread_calls() - mine)

    threads: list[pal.PalThread] = []
    try:
        writes, total, mine = host.calls["write"], host.calls_total, host.thread_calls()
        for _ in range(THREADS):
            threads.append(host.thread_create(work))
            threads.append(host.thread_start(work, (), "helper", helper=True))
        starts = 2 * THREADS  # one clone_thread host call each, on this thread
        with switching_often():
            go.set()
            work()
            for thread in threads:
                assert thread.join(WAIT_S)
        assert host.calls["write"] - writes == (2 * THREADS + 1) * CALLS
        assert host.calls_total - total == (2 * THREADS + 1) * CALLS + starts
        # This thread's account has its own calls, its helpers' and its starts'.
        assert host.thread_calls() - mine == (THREADS + 1) * CALLS + starts
        # A thread with its own account sees its calls alone; a helper (and this
        # thread), the shared account growing with the others' calls beside its own.
        assert accounts.count(CALLS) >= THREADS and min(accounts) == CALLS
        assert host.statistics().total == host.calls_total
    finally:
        go.set()
        for thread in threads:
            thread.join(WAIT_S)
        host.close(handle)
        host.shutdown()
