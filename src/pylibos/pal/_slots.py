"""Thread slots: the bound ``sgx.max_threads`` puts on a host's threads.

An enclave has a fixed number of TCS pages, one per thread that may run inside it; the
main thread holds one.  A new thread (or a pipe's handshake helper) waits up to the
host's ``slot_timeout`` for a slot, then fails with ``NOMEM``, as Gramine's does.

The free slots are tokens in a list: a thread takes one with ``list.pop`` (IndexError:
none free) and gives it back with ``list.append`` as it exits.  Each is one step under
the interpreter's lock, so two threads never take the last slot both, and no lock of
the host's is held on the way (a Ctrl-C cannot leave one held).
"""

from __future__ import annotations

import threading
import time

from ._clone import Threads
from ._core import SHUT_DOWN
from ._errors import PalError, PalErrorCode, ShutDownError
from ._thread import PalThread


class ThreadSlots(Threads):
    """The slot hooks of a host that bounds its threads."""

    max_threads: int

    def _init_slots(self, max_threads: int) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive integer, got {max_threads!r}")
        self.max_threads = max_threads
        # The main thread holds one slot, as its TCS does in an enclave.
        self._free_slots: list[None] = [None] * (max_threads - 1)
        self._take_slot = self._free_slots.pop
        self._give_slot = self._free_slots.append
        self._forget_thread = self._threads.discard  # (bound once: on every exit)
        # Released means "a slot came free since you last looked"; waiters take it.
        self._doorbell = threading.Lock()
        self._doorbell.acquire()
        # One item per thread in ``_await_slot``: an exiting thread rings only when
        # someone may be waiting, and otherwise looks at nothing more.
        self._waiting: list[None] = []

    def _await_slot(self, deadline: float, helper: bool) -> None:
        # Waits on the doorbell, a bare lock: its acquire either takes it or, when a
        # Ctrl-C interrupts it, does not (a Condition's Python-level enter and exit could
        # be interrupted holding its lock, and every exiting thread would then block).
        # An exiting thread gives its slot back before it rings, and this loop looks for
        # a free slot after each ring: a slot freed at any moment is seen.
        # A waiter is listed in ``_waiting`` before its first look at the free slots,
        # and an exiting thread looks at ``_waiting`` after it gave its slot back: so
        # either the exiting thread sees the waiter and rings, or the waiter's look
        # comes after the give-back and sees the slot.  (A Ctrl-C right after the
        # append, before the ``try``, leaves an item behind: exiting threads then look
        # at the doorbell too, as if someone waited; nothing is missed.)
        free = self._free_slots
        waiting = self._waiting
        waiting.append(None)
        try:
            while not free:
                if self.closed:
                    # Woken by shutdown (or shut down before the wait): the start fails
                    # as any start on a closed host does, and the ring goes on to the
                    # next waiter, which fails the same way.
                    self._ring()
                    raise ShutDownError(SHUT_DOWN)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._doorbell.acquire(timeout=remaining):
                    what = "the pipe handshake helper" if helper else "a new thread"
                    raise PalError(
                        PalErrorCode.NOMEM,
                        f"sgx.max_threads ({self.max_threads}) reached: no slot for {what} "
                        f"came free within {self.slot_timeout:g} s",
                    )
        finally:
            waiting.pop()
        if len(free) > 1:
            # Several slots came free for one ring, which this waiter took: pass it on,
            # for the slot it leaves.  (A thread that takes a slot without waiting took
            # no ring, and passes none on.)
            self._ring()

    def _wake_slot_waiters(self) -> None:
        # Shutdown has set ``closed``: a start asleep on the doorbell wakes, sees it,
        # and rings on for the next (``_await_slot``).
        self._ring()

    def _pass_ring(self) -> None:
        # A Ctrl-C right after the doorbell's acquire took the ring: the slot it
        # announced is still free, and a thread asleep beside this one must hear of it.
        # Ringing when no ring was taken only wakes a waiter to look once more.
        if self._free_slots:
            self._ring()

    def _thread_exited(self, thread: PalThread) -> None:
        self._forget_thread(thread)
        # Only a thread that made a host call has an account (None: never ran).  It
        # is made and taken out by the thread itself: no other comes between.
        if thread.ident in self._accounts:
            del self._accounts[thread.ident]  # type: ignore[arg-type]  # (there: an int)
        self._give_slot(None)
        # Ring if someone may wait (see ``_await_slot``), unless rung already.
        if self._waiting and self._doorbell.locked():
            self._ring()

    def _ring(self) -> None:
        # Ringing twice is once.
        try:  # noqa: SIM105 (on every thread's exit: suppress() costs a context manager)
            self._doorbell.release()
        except RuntimeError:
            pass  # rung meanwhile by another thread

    @property
    def threads_in_use(self) -> int:
        """Thread slots taken, the main thread's included."""
        return self.max_threads - len(self._free_slots)

    def _own_threads(self) -> None:
        # In a fork child, after the parent's threads count as ended: the child's one
        # thread runs on the main thread's slot and every other slot is free, whatever
        # the parent's threads were doing with theirs (one between taking a slot and
        # being listed is in no list, and its slot would be lost).  The same list, so
        # the bound take and give stay its own.  No thread of the child waits for one.
        super()._own_threads()
        self._free_slots[:] = [None] * (self.max_threads - 1)
        self._waiting.clear()
