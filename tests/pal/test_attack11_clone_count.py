"""The clone_thread host call, counted in place by ``Threads.thread_start_now``: exact
with many creators at once and in a fork child; and a start that never reached the
host (the creator's account could not be made) is not counted as a host call."""

from __future__ import annotations

import threading

import pytest

from libos_support import BOUND, in_fork_child
from pylibos import pal

from ._pal_support import start_without_an_account, switching_often

CREATORS = 4
STARTS = 60  # per creator


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_many_creators_at_once_lose_no_clone_count(kind: str) -> None:
    """Held (added coverage: creators on several threads at once, where
    test_ledger_counts starts every thread from one): each start is one clone_thread in
    ``calls`` and one call in its creator's own account, with the interpreter switching
    threads as often as it can."""
    host = pal.open_host(kind)
    go = threading.Event()
    mine: list[int] = []
    failures: list[BaseException] = []

    def creator() -> None:
        try:
            assert go.wait(BOUND)
            before = host.thread_calls()
            started = [host.thread_create(lambda: None) for _ in range(STARTS)]
            mine.append(host.thread_calls() - before)
            for thread in started:
                assert thread.join(BOUND)
        except BaseException as exc:  # (reported below)
            failures.append(exc)

    creators = [threading.Thread(target=creator) for _ in range(CREATORS)]
    try:
        clones = host.calls["clone_thread"]
        for thread in creators:
            thread.start()
        with switching_often():
            go.set()
            for thread in creators:
                thread.join(BOUND)
        assert not failures, failures
        assert host.calls["clone_thread"] - clones == CREATORS * STARTS
        assert mine == [STARTS] * CREATORS
        assert host.statistics().total == host.calls_total
    finally:
        go.set()
        for thread in creators:
            thread.join(BOUND)
        host.shutdown()


def test_a_fork_child_counts_its_own_starts_exactly() -> None:
    """Held (added coverage): forked while a thread of the parent starts threads, the
    child counts each of its own starts once, in ``calls`` and in its forking thread's
    account."""
    host = pal.open_host("direct")
    stop = threading.Event()

    def burst() -> None:
        while not stop.is_set():
            host.thread_create(lambda: None).join(BOUND)

    parent_starter = threading.Thread(target=burst)

    def child() -> str:  # pragma: no cover - runs in the fork child
        clones, mine = host.calls["clone_thread"], host.thread_calls()
        threads = [host.thread_create(lambda: None) for _ in range(20)]
        joined = all(t.join(BOUND) for t in threads)
        return f"{joined} {host.calls['clone_thread'] - clones} {host.thread_calls() - mine}"

    try:
        parent_starter.start()
        assert in_fork_child(child) == "True 20 20"
    finally:
        stop.set()
        parent_starter.join(BOUND)
        host.shutdown()


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_start_undone_before_the_host_call_is_not_counted(kind: str) -> None:
    # The creator's account cannot be made (MemoryError in ``_accounts.__missing__``):
    # ``thread_start_now`` undoes the start before the primitive is called (no thread,
    # no clone), yet ``calls["clone_thread"]`` and ``calls_total`` have already counted
    # one, because ``_count(self.calls, _CLONE_THREAD)`` runs before the account's
    # lookup.  ``calls`` then counts a host call no one made (and calls_total exceeds
    # the sum of the accounts by one).  The count in ``calls`` should come with the
    # account's, or be taken back with the start
    # (src/pylibos/pal/_clone.py: thread_start_now).
    host = pal.open_host(kind)

    try:
        clones = host.calls["clone_thread"]
        outcome = start_without_an_account(host, BOUND)
        assert len(outcome) == 1 and isinstance(outcome[0], pal.PalError), outcome
        assert host.live_threads() == []
        assert host.calls["clone_thread"] == clones, "a start never made was counted"
    finally:
        host.shutdown()
