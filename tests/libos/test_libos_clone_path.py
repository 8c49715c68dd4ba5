"""The clone path's own bookkeeping: the profile's marks and record, the host's thread
slots, and what a failed ``_thread`` start reports, each against a Ctrl-C at the worst
moment and a host that refuses."""

from __future__ import annotations

import _thread
import sys
import threading
from typing import Any

import pytest

from libos_support import (
    BOUND,
    assert_profile_whole,
    booted,
    clone_with_sigint_at,
    failing_start_report,
)
from pylibos.libos import install
from pylibos.pal import PalError, PalErrorCode, SgxHost, open_host
from pylibos.pal import _thread as pal_thread


def _noop() -> None:
    return None


def test_interrupt_anywhere_in_the_profile_keeps_it_whole() -> None:
    """A Ctrl-C at any line of the clone's marks and record: the clone is recorded
    whole or not at all, and every later clone is recorded."""
    with booted("sgx", "raw") as libos:
        assert libos.clone(_noop).join(BOUND)
        n = 1
        while clone_with_sigint_at(libos, n):
            assert_profile_whole(libos.profile)
            before = libos.profile.clones
            assert libos.clone(_noop).join(BOUND)
            assert libos.profile.clones == before + 1, n
            n += 1
        assert n > 20
        assert (
            not libos.profile._local.state.clone and not libos.profile._local.state.stack
        )  # none left
        assert_profile_whole(libos.profile)


def test_a_frame_an_interrupted_clone_left_does_not_swallow_later_samples() -> None:
    with booted("sgx", "raw") as libos:
        libos.profile.open_clone()  # as if a Ctrl-C came just after it
        libos.profile.open_clone()
        assert libos.clone(_noop).join(BOUND)
        assert libos.profile.clones == 1
        assert not libos.profile._local.state.clone and not libos.profile._local.state.stack


def test_a_failed_clone_leaves_no_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    with booted("sgx", "raw") as libos:

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise PalError(PalErrorCode.NOMEM, "no thread")

        monkeypatch.setattr(libos.host, "thread_start_now", refuse)
        with pytest.raises(OSError):
            libos.clone(_noop)
        assert not libos.profile._local.state.clone and not libos.profile._local.state.stack
        monkeypatch.undo()
        assert libos.clone(_noop).join(BOUND)
        assert libos.profile.clones == 1


def test_slots_are_the_live_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread holds its slot from its start to its exit work; a start the OS refuses
    gives it back at once; the bound holds exactly."""
    host = open_host("sgx", max_threads=3)
    assert isinstance(host, SgxHost)
    host.slot_timeout = 0.05
    release = threading.Event()
    try:
        held = [host.thread_create(release.wait, BOUND) for _ in range(2)]
        assert host.threads_in_use == 3
        with pytest.raises(PalError) as refused:
            host.thread_create(_noop)
        assert refused.value.code is PalErrorCode.NOMEM
        release.set()
        for thread in held:
            assert thread.join(BOUND)
        assert host.threads_in_use == 1 and not host.live_threads()

        def no_thread(*_args: object, **_kwargs: object) -> int:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(pal_thread, "_start_new_thread", no_thread)
        with pytest.raises(PalError) as failed:
            host.thread_create(_noop)
        assert failed.value.code is PalErrorCode.NOMEM
        assert host.threads_in_use == 1
        monkeypatch.undo()
        assert host.thread_create(_noop).join(BOUND)
        assert host.threads_in_use == 1
    finally:
        release.set()
        host.shutdown()


def _report_of_a_failing_start(monkeypatch: pytest.MonkeyPatch) -> Any:
    args, _boom = failing_start_report(monkeypatch)
    frames = []
    tb = args.exc_traceback
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return args.exc_type, frames


def test_a_failing_start_new_thread_reports_the_functions_frames_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The traceback reported for a ``_thread`` start under the LibOS holds what it holds
    natively: the function's frames, none of the LibOS's."""
    native = _report_of_a_failing_start(monkeypatch)
    with booted("sgx", "raw") as libos, install(libos):
        hooked = _report_of_a_failing_start(monkeypatch)
    assert hooked == native == (KeyError, ["boom"])


def test_a_system_exit_ends_a_start_new_thread_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", got.append)
    with booted("sgx", "raw") as libos, install(libos):
        done = threading.Event()

        def leave() -> None:
            done.set()
            raise SystemExit(3)

        _thread.start_new_thread(leave, ())
        assert done.wait(BOUND)
        for thread in [t for t in libos.threads() if t is not libos.main_thread]:
            assert thread.join(BOUND)
    assert got == []
