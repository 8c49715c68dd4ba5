"""A Ctrl-C that lands just after the main thread's wait for a thread slot took the
doorbell's ring: the interrupted wait passes the ring on, so a thread asleep beside it
hears of the slot that came free."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pylibos import pal

from ._pal_support import WAIT_S

MAIN = threading.main_thread().ident


class _Bell:
    """The host's doorbell, with the interleaving fixed: the other waiter sleeps on it
    only once the main thread took the ring (as if both slept and the main thread won),
    and the main thread's acquire that took the ring is followed by a SIGINT's
    ``KeyboardInterrupt`` (CPython runs a pending handler at the check after a call)."""

    def __init__(self, real: Any, free_one: threading.Event) -> None:
        self.real = real
        self.free_one = free_one
        self.other_waiting = threading.Event()
        self.main_took_ring = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if threading.get_ident() == MAIN:
            self.free_one.set()  # the slot holder exits now, and rings
            got = bool(self.real.acquire(blocking, timeout))
            if got:
                self.main_took_ring.set()
                raise KeyboardInterrupt
            return got
        self.other_waiting.set()
        self.main_took_ring.wait(WAIT_S)
        return bool(self.real.acquire(blocking, timeout))

    def release(self) -> None:
        self.real.release()

    def locked(self) -> bool:
        return bool(self.real.locked())


def test_sigint_after_the_main_thread_took_the_ring_passes_it_to_the_other_waiter() -> None:
    with pal.open_host("sgx", max_threads=2) as host:  # the main thread's slot and one
        assert isinstance(host, pal.SgxHost)
        host.slot_timeout = 1.0
        free_one = threading.Event()
        holder = host.thread_create(free_one.wait, WAIT_S)
        bell = _Bell(host._doorbell, free_one)
        host._doorbell = bell  # type: ignore[assignment]
        go = threading.Event()
        outcome: list[object] = []

        def other() -> None:
            try:
                started = host.thread_create(go.wait, WAIT_S)
                outcome.append(started)
            except pal.PalError as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=other)
        waiter.start()
        try:
            assert bell.other_waiting.wait(WAIT_S)
            with pytest.raises(KeyboardInterrupt):
                host.thread_create(go.wait, WAIT_S)  # the main thread, Ctrl-C'd
            assert holder.join(WAIT_S)
        finally:
            go.set()
            waiter.join(WAIT_S)
        assert len(outcome) == 1
        result = outcome[0]
        if isinstance(result, pal.PalThread):
            assert result.join(WAIT_S)
        assert isinstance(result, pal.PalThread), (
            f"a slot was free ({host.max_threads - host.threads_in_use} of "
            f"{host.max_threads}) but the waiting thread got: {result}"
        )
