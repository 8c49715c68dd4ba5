"""Hostile review of the sampling profile's counts: a Ctrl-C at any line of a clone, a
Ctrl-C in ``Profile.reset``, and a reset or a restart of the sampling while a clone is
under way must leave ``started`` equal to the clones whose thread ran, and the profile
whole (its moments and reservoir agreeing, ``statistics()`` answering)."""

from __future__ import annotations

import functools

import pytest

from libos_support import (
    BOUND,
    assert_profile_whole,
    booted,
    clone_with_sigint_at,
    interrupted,
    sigint_at_line,
)
from pylibos.libos import Profile
from pylibos.pal import PalError, PalErrorCode


def _noop() -> None:
    return None


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
            fired = clone_with_sigint_at(libos, n, functools.partial(ran.append, 1))
        # shutdown joined every thread the LibOS started
        assert_profile_whole(libos.profile)
        if libos.profile.started != len(ran):
            wrong.append((n, libos.profile.started, len(ran)))
        if not fired:
            break
        n += 1
    assert n > 10
    assert not wrong, f"(line, started, threads that ran): {wrong}"


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
            cut: list[int] = []
            fired = interrupted(profile.reset, sigint_at_line(Profile.reset.__code__, n, cut))
            where = cut[0] if cut else -1
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
