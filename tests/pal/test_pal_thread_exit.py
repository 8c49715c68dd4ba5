"""A host thread's end: the creator's exit work, ``running``, the host's bookkeeping, and
an exception escaping the thread's function.

With ``reraise`` the exception goes on to the interpreter, which reports it as it
reports one escaping any thread it started; by then every part of the exit work is
done (the thread has ended: joined, out of the host's list, its slot back), and the
traceback is the thread's own, under one frame of the PAL's."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from pylibos import pal

from ._pal_support import WAIT_S


def _boom() -> None:
    raise KeyError("lost")


@pytest.mark.parametrize("reraise", [False, True])
def test_an_exception_escaping_the_function_after_the_exit_work(
    reraise: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = pal.open_host("sgx")
    assert isinstance(opened, pal.SgxHost)
    host = opened  # (a SgxHost, for the hook below)
    reports: list[Any] = []
    reported = threading.Event()

    made: list[pal.PalThread] = []  # ``record``: the thread, before it starts

    def hook(args: Any) -> None:
        reports.append((args, made[0].is_alive(), dict(running), host.threads_in_use))
        reported.set()

    monkeypatch.setattr(sys, "unraisablehook", hook)
    exits: list[tuple[object, BaseException | None, bool]] = []
    running: dict[int, object] = {}

    def at_exit(pal_thread: pal.PalThread, tag: object) -> None:
        exits.append((tag, pal_thread.exception, pal_thread.ident in running))

    with host:
        thread = host.thread_start(
            _boom, (), "boom", None, reraise, made.append, at_exit, running, "t"
        )
        assert thread.join(WAIT_S)
        failure = thread.exception
        assert isinstance(failure, KeyError)
        # The creator's exit work saw the failure, with the thread still in ``running``.
        assert exits == [("t", failure, True)]
        assert running == {} and host.live_threads() == []
        if not reraise:
            assert not reported.wait(0.2)  # kept for the joiner, reported by nobody
            return
        assert reported.wait(WAIT_S)
    ((args, alive, still_running, in_use),) = reports
    assert args.exc_value is failure
    # Reported once the exit work was done: the thread ended, nothing of it listed.
    assert not alive and still_running == {} and in_use == 1
    frames = []
    tb = args.exc_traceback
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames == ["_run", "_boom"]
