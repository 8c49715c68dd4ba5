"""Host threads (``PalThreadCreate``): one ``clone_thread`` host call each.

A host that bounds its threads (``SgxHost``, through ``_slots``) overrides the three
slot hooks at the end; here every thread has room.  The host's live threads are the
ones holding a slot: one set, so taking a slot and recording the thread are one step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import _interrupts
from ._core import HostCore
from ._errors import PalError, PalErrorCode
from ._thread import PalThread


class Threads(HostCore):
    """Start host threads, keep the set of live ones."""

    def thread_create(
        self,
        fn: Callable[..., object],
        *args: Any,
        record: Callable[[PalThread], object] | None = None,
    ) -> PalThread:
        """Start ``fn(*args)`` on a new host thread (``PalThreadCreate``).

        ``record``, if given, is called with the thread just before it starts, where a
        Ctrl-C cannot come between: a caller interrupted during ``thread_create`` knows
        the thread started if and only if ``record`` was called (and no ``PalError``
        followed).  The thread is the host's either way: ``shutdown`` joins it.
        """
        return self._spawn(
            fn, args, helper=False, name=getattr(fn, "__name__", "pal-thread"), record=record
        )

    def thread_start(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        *,
        name: str,
        joinable: tuple[object, bool] | None = None,
        reraise: bool = False,
        record: Callable[[PalThread], object] | None = None,
    ) -> PalThread:
        """``thread_create`` with the interpreter's own options, for a thread the program
        starts: ``joinable=(handle, daemon)`` starts it with ``_thread.start_joinable_thread``
        on that handle (Python 3.13+); ``reraise`` lets an exception escaping ``fn``
        reach the interpreter, which reports it as it does for its own threads.
        ``record`` as for ``thread_create``."""
        return self._spawn(
            fn,
            args,
            helper=False,
            name=name,
            joinable=joinable,
            reraise=reraise,
            record=record,
        )

    def _spawn(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        *,
        helper: bool,
        name: str,
        joinable: tuple[object, bool] | None = None,
        reraise: bool = False,
        record: Callable[[PalThread], object] | None = None,
    ) -> PalThread:
        self._alive()
        if helper:
            # A helper works for its creator: its host calls are the creator's.
            self.thread_calls()
            args = (self._accounts.calls, fn, *args)
            fn = self._charge_to
        thread = PalThread(
            fn, args, self._thread_exited, name, helper, joinable=joinable, reraise=reraise
        )
        deadline = None
        while True:
            # Taking the slot, the record and the start are one critical section, so an
            # interrupt finds either none of them done or all; the wait for a slot is
            # outside it (a Ctrl-C stops that).
            entered = _interrupts.enter()
            try:
                if self._admit(thread):
                    if record is not None:
                        record(thread)
                    try:
                        self._call("clone_thread", name, thread.start)
                    except (RuntimeError, MemoryError) as exc:
                        # What the primitive raises when the host refuses a thread.
                        self._thread_exited(thread)
                        raise PalError(
                            PalErrorCode.NOMEM, f"cannot start a host thread: {exc}"
                        ) from None
                    return thread
            finally:
                _interrupts.leave(entered)
            if deadline is None:
                deadline = time.monotonic() + self.slot_timeout
            self._await_slot(deadline, helper)

    def _thread_exited(self, thread: PalThread) -> None:
        with self._lock:
            self._threads.discard(thread)
        self._slot_freed()

    def live_threads(self) -> list[PalThread]:
        with self._lock:
            return [t for t in self._threads if t.is_alive()]

    # -- hooks: where a host that bounds its threads differs -----------------------------

    def _admit(self, thread: PalThread) -> bool:
        """Record ``thread`` as the host's, taking a thread slot for it if one is free
        now (never waits); False if none is."""
        with self._lock:
            self._threads.add(thread)
        return True

    def _await_slot(self, deadline: float, helper: bool) -> None:
        """Wait until a thread slot may be free, or raise ``NOMEM`` at ``deadline``."""

    def _slot_freed(self) -> None:
        """A thread has given its slot back (or held none)."""
