"""Host threads (``PalThreadCreate``): one ``clone_thread`` host call each.

The host's live threads are the ones holding a thread slot, in ``_threads``.  A host
that bounds its threads (``SgxHost``, through ``_slots``) keeps its free slots as tokens
in a list and takes one with ``list.pop``; here every thread has room (a take that
never fails).  Taking a slot, recording the thread and starting it are one critical
section, and nothing on the way takes a lock of the host: ``set.add``/``discard`` and
``list.pop``/``append`` are each one step under the interpreter's lock, so no thread
sees half of one.
"""

from __future__ import annotations

import itertools
import time
from _thread import allocate_lock as _allocate_lock
from _thread import get_ident as _get_ident
from collections.abc import Callable
from typing import Any, NoReturn

from . import _interrupts
from . import _thread as _pal_thread
from ._core import SHUT_DOWN, HostCore
from ._errors import PalError, PalErrorCode, ShutDownError
from ._interrupts import marks_sections, owed
from ._ledger import _ONE_CALL, _count
from ._thread import PalThread

_Fn = Callable[..., object]
_Args = tuple[Any, ...]
_Joinable = tuple[object, bool] | None
_Record = Callable[[PalThread], object] | None
_AtExit = Callable[[PalThread, Any], object] | None
_new_thread = object.__new__
_CLONE_THREAD = ("clone_thread",)  # the host call's kind, as ``_count`` takes it


def _ended_as_main(thread: PalThread) -> None:
    """The end of a host thread that forked: in the child it is the main thread, which
    holds no slot of its own and is in no host's list."""


class Threads(HostCore):
    """Start host threads, keep the set of live ones."""

    # Takes a thread slot, or raises IndexError when none is free (never waits): a C
    # call, one step for the interpreter.  Unbounded here.
    _take_slot: Callable[[], object] = staticmethod(itertools.repeat(None).__next__)

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
        name = getattr(fn, "__name__", "pal-thread")
        return self.thread_start(fn, args, name, None, False, record)

    @marks_sections
    def thread_start(
        self,
        fn: _Fn,
        args: _Args,
        name: str,
        joinable: _Joinable = None,
        reraise: bool = False,
        record: _Record = None,
        at_exit: _AtExit = None,
        running: dict[int, Any] | None = None,
        tag: object = None,
        helper: bool = False,
    ) -> PalThread:
        """``thread_create`` with every option, positional, waiting (up to
        ``slot_timeout``) for a thread slot when none is free.

        ``joinable=(handle, daemon)`` starts the thread with
        ``_thread.start_joinable_thread`` on that handle (Python 3.13+); ``reraise`` lets
        an exception escaping ``fn`` reach the interpreter, which reports it as it does
        for its own threads.  ``record`` as for ``thread_create``.  ``at_exit(thread,
        tag)`` runs on the new thread once ``fn`` has returned or raised (what it raised
        is in ``thread.exception``), before the thread counts as ended: a join returns
        only after it.  ``running``: a dict in which the new thread lists ``tag`` under
        its ident from before ``fn`` runs until after ``at_exit``.  A ``helper`` works
        for its creator: its host calls are the creator's.
        """
        if self.closed:
            raise ShutDownError(SHUT_DOWN)
        if helper:
            args = (self.thread_account(), fn, *args)
            fn = self._charge_to
        made: list[PalThread] = []

        def record_made(thread: PalThread) -> None:
            if helper:
                thread.helper = True
            made.append(thread)
            if record is not None:
                record(thread)

        wait: SlotWait | None = None
        try:
            while True:
                # The start is one critical section (``thread_start_now``), so an
                # interrupt finds either none of it done or all; the wait for a slot is
                # outside it (a Ctrl-C stops that).
                _pal_critical = True
                try:
                    if self.thread_start_now(
                        fn, args, name, joinable, reraise, record_made, at_exit, running, tag
                    ):
                        return made[0]
                finally:
                    _pal_critical = False
                    if owed[0]:
                        _interrupts.deliver()
                if wait is None:
                    wait = SlotWait(self, helper)
                wait.wait()
        except BaseException:
            if wait is not None:
                wait.abandon()
            raise

    def thread_start_now(
        self,
        fn: _Fn,
        args: _Args,
        name: str,
        joinable: _Joinable,
        reraise: bool,
        record: _Record,
        at_exit: _AtExit,
        running: dict[int, Any] | None,
        tag: object,
    ) -> bool:
        """The start itself, for a caller inside a marked critical section (the clone
        path's, or ``thread_start``'s), which covers this call: it never waits and opens
        no section of its own, so a Ctrl-C is deferred to the section's end and the
        caller has the thread (through ``record``) before one can reach it.

        With a thread slot free now, the host thread is made, ``record`` is called with
        it just before it starts (for other threads that look at it before this call
        returns), it starts, and True is returned.  With none free nothing is made and
        False is returned: the caller leaves its section, waits for a slot with a
        ``SlotWait`` (open to a Ctrl-C), and tries again in its section.

        This is the one place a ``PalThread`` is made: built in place, one frame and
        ten arguments less on every start; ``_run``'s arguments go straight to the
        primitive when not joinable.
        """
        if self.closed:
            raise ShutDownError(SHUT_DOWN)
        thread = _new_thread(PalThread)
        thread.name = name
        thread._on_exit = self._on_thread_exit
        if joinable is not None:
            thread._joinable = joinable
        if reraise:
            thread._reraise = True
        done = thread._done = _allocate_lock()
        done.acquire()
        try:
            self._take_slot()
        except IndexError:
            return False
        self._threads.add(thread)
        if self.closed:  # shutdown ran since the test above; see ``_unstarted``
            self._unstarted(thread)
        if record is not None:
            record(thread)
        try:
            # The host call, counted in place (``_call``'s two counts, one step each: the
            # primitive raises no ``OSError`` for the gate to map, and a frame less on
            # every start); in the ``try``, so a ``MemoryError`` of an account's making
            # undoes the start as the primitive's does (the account first: a start so
            # undone is not counted).
            _count(self._accounts[_get_ident()], _ONE_CALL)
            _count(self.calls, _CLONE_THREAD)
            if joinable is None:
                # ``thread.start`` inlined (one frame less on every start).
                thread._started = True
                thread.ident = _pal_thread._start_new_thread(
                    thread._run, (fn, args, at_exit, running, tag)
                )
            else:
                thread._launch = (fn, args, at_exit, running, tag)
                thread.start()
        except (RuntimeError, MemoryError) as exc:
            # What the primitive raises when the host refuses a thread.  (A joinable
            # thread's ``start`` has undone its own refusal; not a count's failure.)
            if joinable is None or not thread._started:
                thread._refused()
            self._thread_exited(thread)
            raise PalError(PalErrorCode.NOMEM, f"cannot start a host thread: {exc}") from None
        return True

    def _unstarted(self, thread: PalThread) -> NoReturn:
        """Undo a thread recorded on a host shut down meanwhile (``shutdown`` sets
        ``closed`` before it lists the threads it joins, so it may not join this one):
        its slot is given back, and a joiner finds it ended."""
        thread._finished = True
        thread._done.release()
        self._thread_exited(thread)
        raise ShutDownError(SHUT_DOWN)

    def _own_threads(self) -> None:
        """In a child made by ``os.fork``, in its one thread: the parent's other host
        threads do not exist here.  Each counts as ended, so a join of it returns and
        its thread slot comes back (the child's starts would otherwise wait for slots no
        thread will give back).  The forking thread, if a host thread, is the child's
        main thread: it gives back its own slot now, not at its end, and a shutdown
        does not join it (it would wait for itself)."""
        me = _get_ident()
        for thread in list(self._threads):
            if thread.ident == me:
                # The forking thread is the child's main thread now, on the main
                # thread's slot: its own comes back, and its end gives none back.  It
                # keeps its host-call account.
                account = self._accounts.get(me)
                thread._on_exit = _ended_as_main
                self._thread_exited(thread)
                if account is not None:
                    self._accounts[me] = account
                continue
            thread._finished = True
            thread._give_back_done()
            self._thread_exited(thread)

    def _thread_exited(self, thread: PalThread) -> None:
        self._threads.discard(thread)
        # Only a thread that made a host call has an account (None: never ran); as
        # ``ThreadSlots._thread_exited``.
        if thread.ident in self._accounts:
            del self._accounts[thread.ident]  # type: ignore[arg-type]  # (there: an int)

    def live_threads(self) -> list[PalThread]:
        # list(set) is one step: no thread adds or discards one halfway.
        return [t for t in list(self._threads) if t.is_alive()]

    # -- hooks: where a host that bounds its threads differs -----------------------------

    def slot_wait(self) -> SlotWait:
        """A wait for a thread slot, for a start ``thread_start_now`` declined."""
        return SlotWait(self, False)

    def _wake_slot_waiters(self) -> None:
        """At shutdown: wake the starts asleep in a wait for a slot."""

    def _pass_ring(self) -> None:
        """After a slot wait ended by an exception: pass on a ring it may have taken."""

    def _await_slot(self, deadline: float, helper: bool) -> None:
        """Wait until a thread slot may be free, or raise ``NOMEM`` at ``deadline``."""


class SlotWait:
    """The wait of a start that found no thread slot free (``thread_start_now`` returned
    False), outside any critical section: a Ctrl-C stops it.

    ``wait()`` returns once a slot may be free; the caller then tries its start again in
    its section, and waits again if another thread took the slot first.  All the waits
    of one ``SlotWait`` share one deadline, the host's ``slot_timeout`` from the first:
    there ``PalError(NOMEM)`` is raised, and ``ShutDownError`` once the host shuts down
    (it wakes the waiters).  A start that ends by an exception after a wait calls
    ``abandon()``: a slot that came free for it is announced to the next waiter.
    """

    __slots__ = ("_deadline", "_helper", "_host")

    def __init__(self, host: Threads, helper: bool) -> None:
        self._host = host
        self._helper = helper
        self._deadline: float | None = None

    def wait(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self._host.slot_timeout
        self._host._await_slot(self._deadline, self._helper)

    def abandon(self) -> None:
        """The start gave up after a wait (the wait itself raised, or the start after
        it): a ring it took, for a slot it did not take, goes to the next waiter."""
        self._host._pass_ring()
