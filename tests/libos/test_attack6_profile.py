"""Hostile review of the sampling profile's counts: a Ctrl-C at any line of a clone, a
Ctrl-C in ``Profile.reset``, and a reset or a restart of the sampling while a clone is
under way must leave ``started`` equal to the clones whose thread ran, and the profile
whole (its moments and reservoir agreeing, ``statistics()`` answering)."""

from __future__ import annotations

import functools
import signal
import sys
from types import FrameType
from typing import Any

import pytest

from libos_support import (
    BOUND,
    assert_profile_whole,
    booted,
    interrupted,
    tracing_only,
)
from pylibos.libos import LibOS, Profile
from pylibos.libos import _profile as profile_module
from pylibos.pal import PalError, PalErrorCode, _interrupts


def _noop() -> None:
    return None


def _interrupt_clone_at(libos: LibOS, n: int, fn: Any) -> bool:
    """Clone ``fn`` once with a SIGINT, delivered by the real handler (so a critical
    section defers it), at the ``n``-th line the clone path or the profile's code runs;
    True if it fired."""
    count = 0
    fired = False
    clone_path = LibOS._clone.__code__

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count, fired
        code = frame.f_code
        if event == "line" and (code is clone_path or code.co_filename == profile_module.__file__):
            count += 1
            if count == n:
                fired = True
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    sys.settrace(tracer)
    try:
        try:
            libos.clone(fn)
        finally:
            sys.settrace(None)
    except KeyboardInterrupt:
        assert fired
    return fired


@pytest.mark.parametrize("every", [1, 2])  # the interrupted clone sampled, or not
def test_started_counts_the_threads_that_ran_after_a_ctrl_c_anywhere(every: int) -> None:
    """``started`` is "clones started, less those that failed".  A Ctrl-C at any line of
    a clone: once the LibOS has joined every thread, ``started`` must equal the threads
    whose function ran.  Before the fix: a Ctrl-C deferred to the end of the start's section is
    raised after the thread started, and the rollback counts that clone failed (the thread
    runs, ``started`` is one short); a Ctrl-C before the ``try`` counts a clone started
    that never was (one too many)."""
    wrong: list[tuple[int, int, int]] = []
    n = 1
    while True:
        ran: list[int] = []
        with booted("direct", "eventfd", profile_every=every) as libos:
            if every == 2:
                assert libos.clone(ran.append, 0).join(BOUND)  # the next one: not sampled
            fired = _interrupt_clone_at(libos, n, functools.partial(ran.append, 1))
        # shutdown joined every thread the LibOS started
        assert_profile_whole(libos.profile)
        if libos.profile.started != len(ran):
            wrong.append((n, libos.profile.started, len(ran)))
        if not fired:
            break
        n += 1
    assert n > 10
    assert not wrong, f"(line, started, threads that ran): {wrong}"


class _SigintAtLine:
    """A frame's trace function that calls the PAL's own SIGINT handler (as the
    interpreter would run it on a real Ctrl-C) at the ``n``-th line event it is given,
    once: inside a critical section the interrupt is deferred to the section's end, as
    a real one is; ``fired`` holds that line's number."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.fired: list[int] = []

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.count += 1
            if self.count == self.n and not self.fired:
                self.fired.append(frame.f_lineno)
                _interrupts._on_sigint(signal.SIGINT, frame)
        return self


def test_a_ctrl_c_in_reset_leaves_the_profile_whole() -> None:
    """``reset`` cut short by a Ctrl-C at any line (the main thread, as a benchmark's
    per-batch reset is): the profile must stay whole and ``statistics()`` must answer,
    as after ``_record`` or ``_fold`` (marked critical sections).  Before the fix: ``reset`` is no
    section; cut after ``_sampled = 0`` the moments keep their sums over no clone
    (``statistics()`` divides by zero), cut after ``_moments.clear()`` the reservoir keeps
    its rows for good."""
    broken: list[tuple[int, str]] = []
    with booted("direct", "eventfd") as libos:
        profile = libos.profile
        n = 1
        while True:
            for _ in range(3):
                assert libos.clone(_noop).join(BOUND)
            assert profile.clones >= 3  # (folds the pending clones in)
            cut = _SigintAtLine(n)
            fired = interrupted(profile.reset, tracing_only(Profile.reset.__code__, cut))
            where = cut.fired[0] if cut.fired else -1
            if profile._lock.locked():
                # Cut at the with line's second line event, as the block ends: the
                # interpreter runs no signal handler there (no place for a Ctrl-C).
                profile._lock.release()
            try:
                profile.statistics()
                assert_profile_whole(profile)
            except (AssertionError, ArithmeticError) as exc:
                broken.append((where, repr(exc)[:120]))
            profile.reset()
            if not fired:
                break
            n += 1
        assert n > 3
    assert not broken, broken


@pytest.mark.parametrize("restart", ["reset", "enabled"])
def test_a_clone_failing_across_a_reset_counts_no_negative_starts(
    monkeypatch: pytest.MonkeyPatch, restart: str
) -> None:
    """Another thread resets the profile (or restarts its sampling through ``enabled``)
    while a clone is under way, and that clone then fails (no thread slot: NOMEM).  No
    clone was started since the reset: ``started`` must be 0, never negative.  Before
    the fix the failed clone was taken off a count that never held it (``started`` was
    -1)."""
    with booted("direct", "eventfd") as libos:
        profile = libos.profile

        def refuse(*_args: object, **_kwargs: object) -> bool:
            # The clone is under way here (its turn in the sampling taken): what another
            # thread's reset or restart does at this moment.
            if restart == "reset":
                profile.reset()
            else:
                profile.enabled = True
            raise PalError(PalErrorCode.NOMEM, "no thread slot")

        monkeypatch.setattr(libos.host, "thread_start_now", refuse)
        with pytest.raises(OSError):
            libos.clone(_noop)
        monkeypatch.undo()
        assert profile.started == 0, profile.started
        assert profile.statistics().started == 0
