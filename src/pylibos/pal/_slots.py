"""Thread slots: the bound ``sgx.max_threads`` puts on a host's threads.

An enclave has a fixed number of TCS pages, one per thread that may run inside it; the
main thread holds one.  A new thread (or a pipe's handshake helper) waits up to the
host's ``slot_timeout`` for a slot, then fails with ``NOMEM``, as Gramine's does.
"""

from __future__ import annotations

import contextlib
import threading
import time

from ._clone import Threads
from ._errors import PalError, PalErrorCode
from ._thread import PalThread


class ThreadSlots(Threads):
    """The slot hooks of a host that bounds its threads."""

    max_threads: int

    def _init_slots(self, max_threads: int) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive integer, got {max_threads!r}")
        self.max_threads = max_threads
        self._doorbell = threading.Lock()
        self._doorbell.acquire()

    def _slot_free(self) -> bool:
        # Each thread in ``_threads`` holds a slot; the main thread holds one more, as
        # its TCS does in an enclave.
        return len(self._threads) + 1 < self.max_threads

    def _await_slot(self, deadline: float, helper: bool) -> None:
        # Waits on the doorbell, a bare lock: its acquire either takes it or, when a
        # Ctrl-C interrupts it, does not (a Condition's Python-level enter and exit could
        # be interrupted holding its lock, and every exiting thread would then block).
        while not self._slot_free():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._doorbell.acquire(timeout=remaining):
                what = "the pipe handshake helper" if helper else "a new thread"
                raise PalError(
                    PalErrorCode.NOMEM,
                    f"sgx.max_threads ({self.max_threads}) reached: no slot for {what} "
                    f"came free within {self.slot_timeout:g} s",
                )

    def _admit(self, thread: PalThread) -> bool:
        with self._lock:
            if not self._slot_free():
                return False
            self._threads.add(thread)
            more = self._slot_free()
        if more:
            self._ring()  # another waiter may have been rung for the same free slots
        return True

    def _slot_freed(self) -> None:
        self._ring()

    def _ring(self) -> None:
        # Released means "a slot came free since you last looked"; ringing twice is once,
        # and a doorbell already rung is left alone (the common case: nobody waits).
        if self._doorbell.locked():
            with contextlib.suppress(RuntimeError):  # rung meanwhile by another thread
                self._doorbell.release()

    @property
    def threads_in_use(self) -> int:
        """Thread slots taken, the main thread's included."""
        with self._lock:
            return len(self._threads) + 1
