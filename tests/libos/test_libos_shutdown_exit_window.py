"""LibOS.shutdown against a thread in the middle of its exit work: out of the thread
table, its event not yet released.  Shutdown must join it, so that no event is released
(put back in the pool, or closed) after shutdown has returned."""

from __future__ import annotations

import inspect
import sys
import threading
from types import FrameType
from typing import Any

import pytest

from libos_support import BOUND
from pylibos import pal
from pylibos.libos import LibOS, LibOSThread

_EXIT = LibOS._thread_exit
_JOIN = LibOS._join_cloned


def _line_in(fn: Any, text: str) -> int:
    """The line of function ``fn`` holding ``text`` (once)."""
    lines, first = inspect.getsourcelines(fn)
    (offset,) = [i for i, line in enumerate(lines) if text in line]
    return first + offset


@pytest.mark.parametrize("pool", [False, True], ids=["no-pool", "pool"])
def test_shutdown_joins_a_thread_out_of_the_table_before_its_release(pool: bool) -> None:
    """The thread is stopped (a tracer, in the thread itself) in ``_thread_exit`` just
    after it left the table and before it releases its event.  Shutdown runs; the thread
    goes on only once shutdown is joining it.  Shutdown returns after the release, with
    the thread ended and its event closed."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw", pool=pool)
    release_line = _line_in(_EXIT, "self._factory.release(thread.event)")
    join_line = _line_in(_JOIN, "thread._pal.join(left())")
    paused, go = threading.Event(), threading.Event()
    order: list[str] = []

    def at_release(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == release_line and not paused.is_set():
            paused.set()
            go.wait(BOUND)
        elif event == "return":
            order.append("released")
        return at_release

    def exit_only(frame: FrameType, event: str, arg: object) -> Any:
        return at_release if frame.f_code is _EXIT.__code__ else None

    def body() -> None:
        sys.settrace(exit_only)  # from here on, in this thread: its exit work is traced

    def in_join(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == join_line:
            go.set()  # the thread goes on only while shutdown joins
        return in_join

    def joins_only(frame: FrameType, event: str, arg: object) -> Any:
        return in_join if frame.f_code is _JOIN.__code__ else None

    thread: LibOSThread | None = None
    try:
        thread = libos.clone(body)
        assert paused.wait(BOUND)
        # The window: out of the table, still in ``_running``, its event not released.
        assert thread not in libos.threads()
        assert thread in libos._running.values()
        assert not thread.event.closed
        sys.settrace(joins_only)
        try:
            libos.shutdown(timeout=BOUND)
        finally:
            sys.settrace(None)
        order.append("shutdown returned")
        assert thread._pal is not None
        ended = not thread._pal.is_alive()
        assert go.is_set(), "shutdown never joined the thread doing its exit work"
        assert order == ["released", "shutdown returned"], order
        assert ended
        assert thread.event.closed
        assert libos._running == {}
    finally:
        go.set()
        if thread is not None and thread._pal is not None:
            thread._pal.join(BOUND)
        libos.shutdown()
        host.shutdown()
