"""PalThread.join under a Ctrl-C: a join of a thread not yet started, and a second
Ctrl-C in the join's clean-up."""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from libos_support import InterruptAtLine, interrupted, tracing_only
from pylibos import pal
from pylibos.pal._thread import PalThread


def _acquire_lines() -> tuple[int, int]:
    """The line of ``join`` that takes the done lock with a timeout, and the next one."""
    lines, first = inspect.getsourcelines(PalThread.join)
    at = [i for i, line in enumerate(lines) if "self._done.acquire(" in line and "timeout" in line]
    return first + at[0], first + at[0] + 1


def _join_traced(thread: PalThread, timeout: float, local: Callable[..., Any]) -> None:
    """``thread.join(timeout)`` with ``local`` tracing the lines of ``join`` (it raises
    the KeyboardInterrupt a Ctrl-C would); the interrupt, if it came, is swallowed."""

    interrupted(lambda: thread.join(timeout), tracing_only(PalThread.join.__code__, local))


def _held_in_record(
    made: list[PalThread], recorded: threading.Event, joined: threading.Event, thread: PalThread
) -> None:
    """A ``record``: the host has the thread and is about to start it; it is held here
    (bounded) while the main thread joins it."""
    made.append(thread)
    recorded.set()
    joined.wait(2.0)


def test_ctrl_c_in_join_of_a_thread_not_yet_started_does_not_block_its_start() -> None:
    """The host records the thread (``record``, e.g. ``LibOSThread._attach``) before it
    starts it, so a shutdown on the main thread can join it in between.  A Ctrl-C at
    each line of that join in turn: the start must still return (before: a Ctrl-C
    between the join's taking of the free ``_done`` lock and its release left it held by
    nobody, ``_finished`` being False, and ``start`` waited for ever on
    ``_done.acquire()``, in a critical section, holding a thread slot)."""
    stuck_at: list[int] = []
    n = 0
    with pal.open_host("direct") as host:
        while True:
            n += 1
            assert n < 60
            go = threading.Event()
            recorded, joined = threading.Event(), threading.Event()
            made: list[PalThread] = []
            record = functools.partial(_held_in_record, made, recorded, joined)
            starter = threading.Thread(
                target=host.thread_start, args=(go.wait, (5.0,), "x", None, False, record)
            )
            starter.start()
            assert recorded.wait(2.0)
            thread = made[0]
            local = InterruptAtLine(n)
            fired = local.fired
            _join_traced(thread, 0.05, local)
            joined.set()
            starter.join(2.0)
            if starter.is_alive():  # clean up: let start go on
                stuck_at.extend(fired)
                thread._done.release()
                starter.join(2.0)
            go.set()
            assert thread.join(2.0)
            if not fired:
                break
    assert not stuck_at, f"start() waited for ever after a Ctrl-C in join at line {stuck_at}"


def test_a_second_ctrl_c_in_joins_except_branch_strands_another_joiner() -> None:
    """Two joiners wait for a running thread; the main thread wins the done lock when the
    thread ends, is interrupted before giving it back, and a second Ctrl-C lands in its
    except branch before the release.  The other joiner (already past the ``_finished``
    check, in ``acquire``) then waits out its timeout for a thread that has ended: for
    ever without one."""
    acquire_line, after_acquire = _acquire_lines()
    main_ident = threading.get_ident()
    armed: list[bool] = []
    injected: list[str] = []

    class Probe(PalThread):
        """The second Ctrl-C, at the first bytecode of the except branch's release (a
        trace function that raised is unset, so it is raised here)."""

        __slots__ = ()

        def _give_back_done(self) -> None:
            if armed and threading.get_ident() == main_ident:
                armed.clear()
                injected.append("second")
                raise KeyboardInterrupt
            super()._give_back_done()

    def in_acquire(ident: int | None) -> bool:
        f = sys._current_frames().get(ident or 0)
        while f is not None and f.f_code is not PalThread.join.__code__:
            f = f.f_back
        return f is not None and f.f_lineno == acquire_line

    def _as_probe(thread: PalThread) -> None:
        thread.__class__ = Probe  # made by the host, before it starts

    with pal.open_host("direct") as host:
        for attempt in range(30):
            release = threading.Event()
            thread = host.thread_start(release.wait, (5.0,), "x", None, False, _as_probe)
            other_result: list[bool] = []
            other = threading.Thread(target=lambda: other_result.append(thread.join(3.0)))  # noqa: B023

            def direct() -> None:
                # Main waits first, then the other joiner (futex waiters wake in order); then
                # the thread ends.
                for _ in range(1_000_000):
                    if in_acquire(main_ident):
                        break
                other.start()  # noqa: B023
                for _ in range(1_000_000):
                    if in_acquire(other.ident):  # noqa: B023
                        break
                release.set()  # noqa: B023

            director = threading.Thread(target=direct)
            director.start()
            injected.clear()
            armed.clear()

            def local(frame: FrameType, event: str, arg: Any) -> Any:
                if (
                    event == "line"
                    and frame.f_lineno == after_acquire
                    and not injected
                    and in_acquire(other.ident)  # noqa: B023
                ):
                    injected.append("first")
                    armed.append(True)
                    raise KeyboardInterrupt
                return local

            _join_traced(thread, 3.0, local)
            director.join(5.0)
            other.join(5.0)
            if injected == ["first", "second"]:
                assert thread.join(0) and not thread.is_alive()
                stranded = other_result != [True]
                if thread._done.locked():
                    thread._done.release()
                assert not stranded, (
                    f"attempt {attempt}: the other joiner's join(3.0) returned {other_result} "
                    "for a thread that had ended"
                )
                return
    raise AssertionError("the interleaving was never reached")
