"""LibOS.shutdown's wait for starts under way: a start that completes while shutdown is in
its first round of joins (after it listed the running threads, before it looks for starts
under way) has its thread woken and joined by the second round, which always runs."""

from __future__ import annotations

import inspect
import sys
import threading
from types import FrameType
from typing import Any

from libos_support import BOUND
from pylibos import pal
from pylibos.libos import LibOS, LibOSThread
from pylibos.libos import _libos as libos_module

_CLONE = libos_module.LibOS._clone


def _line_in(fn: Any, text: str) -> int:
    """The first line of function ``fn`` holding ``text``."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_a_start_finishing_during_shutdowns_first_joins_is_joined() -> None:
    """Thread S starts a thread and is past ``_clone``'s second test of ``_closed`` when
    the main thread shuts the LibOS down.  Shutdown's first ``_join_cloned`` lists the
    running threads (S's is not running yet), and while it joins them (here: at once)
    S's start ends and its thread runs.  ``_await_starts`` then finds no ``_clone`` frame;
    the second round of joins runs all the same, and wakes and joins the new thread
    before shutdown closes its event."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    paused, go, cloned, body_in, body_go = (threading.Event() for _ in range(5))
    seen: dict[str, Any] = {}
    line = _line_in(_CLONE, "started_now = self.host.thread_start_now(")
    code = _CLONE.__code__

    def body() -> None:
        event = libos.current_thread().event
        body_in.set()
        # Shutdown wakes its threads by setting their events, then joins them.
        while not body_go.is_set():
            try:
                if event.wait(0.005):
                    seen["woken"] = True
                    break
            except OSError as exc:  # its event closed under it
                seen["woken"] = exc
                break
        seen["event_closed"] = event.closed

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == line and not paused.is_set():
            paused.set()
            go.wait(BOUND)
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    def starter() -> None:
        sys.settrace(tracer)
        try:
            seen["thread"] = libos.clone(body)
        except BaseException as exc:
            seen["refused"] = exc
        finally:
            sys.settrace(None)
            cloned.set()

    join_code = LibOS._join_cloned.__code__
    listed = _line_in(LibOS._join_cloned, "for thread in cloned.values():")

    def in_join(frame: FrameType, event: str, arg: object) -> Any:
        # Shutdown's first round of joins has listed the running threads: the start
        # goes on and ends (a GIL switch while shutdown wakes and joins its threads).
        if event == "line" and frame.f_lineno == listed and not go.is_set():
            go.set()
            assert cloned.wait(BOUND)
            assert body_in.wait(BOUND)
        return in_join

    def during_first_joins(frame: FrameType, event: str, arg: object) -> Any:
        return in_join if frame.f_code is join_code else None

    s = threading.Thread(target=starter)
    s.start()
    try:
        assert paused.wait(BOUND)
        sys.settrace(during_first_joins)
        try:
            libos.shutdown(timeout=BOUND)
        finally:
            sys.settrace(None)
        started = seen.get("thread")
        assert isinstance(started, LibOSThread), seen
        assert started._pal is not None
        still_running = started._pal.is_alive()
        body_go.set()
        started._pal.join(BOUND)
        assert not still_running and seen.get("woken") is True, (
            f"shutdown returned with a thread it started running, never woken nor joined: {seen}"
        )
    finally:
        go.set()
        body_go.set()
        s.join(BOUND)
        t = seen.get("thread")
        if isinstance(t, LibOSThread) and t._pal is not None:
            t._pal.join(BOUND)
        libos.shutdown()
        host.shutdown()
