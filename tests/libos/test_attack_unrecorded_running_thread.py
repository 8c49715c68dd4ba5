"""A cloned thread runs before its ``LibOSThread`` knows its host thread.

On the clone path's fast way (a thread slot free: ``Host.thread_start_now``) the host
thread is started inside the PAL call, and ``_pal`` is set by the caller only once that
call has returned.  A creator thread that the scheduler holds between the two (any
thread but the main one can be held there; here a trace function holds it) leaves a
thread that runs the program's function, is in the thread table and is
``current_thread()`` for itself, while its ``LibOSThread`` says it is not alive, that
it was never cloned (``join``), and takes a look at ``exception`` for the end of the
thread (so a failure of the thread is then neither kept as a failure nor reported).
Before the fast way, the PAL recorded the host thread on it (``record``) before it
started."""

from __future__ import annotations

import inspect
import sys
import threading
from types import FrameType
from typing import Any

from libos_support import BOUND
from pylibos import pal
from pylibos.libos import LibOS, LibOSThread
from pylibos.pal._clone import Threads


def _return_line() -> int:
    """The line of ``thread_start_now`` after the host thread started (its last
    ``return True``)."""
    lines, first = inspect.getsourcelines(Threads.thread_start_now)
    found = [i for i, text in enumerate(lines) if text.strip() == "return True"]
    assert found, "thread_start_now has no return after the start"
    return first + found[-1]


def test_a_running_cloned_thread_is_alive_and_joinable_from_its_first_line() -> None:
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd")
    code, line = Threads.thread_start_now.__code__, _return_line()
    looked = threading.Event()
    release = threading.Event()
    seen: dict[str, Any] = {}
    made: list[LibOSThread] = []

    def body() -> None:
        me = libos.current_thread()
        seen["alive"] = me.is_alive()
        try:
            me.join(0)  # joining oneself: not done yet, but a cloned thread
            seen["join"] = "ok"
        except RuntimeError as exc:
            seen["join"] = str(exc)
        looked.set()
        release.wait(BOUND)

    def hold(frame: FrameType, event: str, arg: Any) -> Any:
        # The creator, held just after the host thread started and before the call
        # returns, until the new thread has looked at itself (bounded).
        if event == "line" and frame.f_lineno == line:
            looked.wait(BOUND)
        return hold

    def creator() -> None:
        sys.settrace(lambda frame, event, arg: hold if frame.f_code is code else None)
        try:
            made.append(libos.clone(body))
        finally:
            sys.settrace(None)

    outer = threading.Thread(target=creator)
    try:
        outer.start()
        assert looked.wait(BOUND)
        release.set()
        outer.join(BOUND)
        assert made and made[0].join(BOUND)
        assert seen["alive"] and seen["join"] == "ok", (
            f"a cloned thread, running its function, saw itself as not alive "
            f"(is_alive() = {seen['alive']}) and not cloned (join: {seen['join']!r})"
        )
    finally:
        looked.set()
        release.set()
        outer.join(BOUND)
        libos.shutdown()
        host.shutdown()
