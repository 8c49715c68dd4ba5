"""Marked critical sections (``_interrupts.marks_sections``): a Ctrl-C between any two
bytecodes of a thread start or of an eventfd's open or close loses nothing.

Two ways in: a real SIGINT (``signal.raise_signal``) inside a section, and the PAL's own
SIGINT handler called at every opcode of one call, from a trace function (as the
interpreter would run it there: the handler decides whether to defer).  Every opcode is
stricter than CPython, which runs a handler only at some of them.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from libos_support import interrupted, run_traced
from pylibos import pal
from pylibos.pal import _interrupts
from pylibos.pal._interrupts import marks_sections, owed

from ._pal_support import WAIT_S, open_fds

MAIN = threading.main_thread().ident


@marks_sections
def _marked_section(inside: Callable[[], None], done: list[str]) -> None:
    _pal_critical = True
    try:
        inside()
        done.append("section")
    finally:
        _pal_critical = False
        if owed[0]:
            _interrupts.deliver()


def _raise_sigint() -> None:
    signal.raise_signal(signal.SIGINT)
    for _ in range(100):  # bytecodes where a handler that does not defer raises
        pass


def test_a_real_sigint_in_a_marked_section_comes_as_it_ends() -> None:
    with pal.open_host("direct"):
        assert _interrupts.installed()
        done: list[str] = []
        with pytest.raises(KeyboardInterrupt):
            _marked_section(_raise_sigint, done)
        assert done == ["section"]
        assert not owed[0]


def test_a_real_sigint_outside_a_section_comes_at_once() -> None:
    with pal.open_host("direct"):
        done: list[str] = []
        with pytest.raises(KeyboardInterrupt):
            _raise_sigint()
            done.append("after")
        assert done == [] and not owed[0]


def test_nested_sections_deliver_at_the_outermost_end() -> None:
    """A marked section inside an ``enter``/``leave`` one and the other way round: the
    interrupt comes once, as the outer one ends."""
    with pal.open_host("direct"):
        done: list[str] = []

        def inner_plain() -> None:
            entered = _interrupts.enter()
            try:
                _raise_sigint()
                done.append("plain")
            finally:
                _interrupts.leave(entered)

        with pytest.raises(KeyboardInterrupt):
            _marked_section(inner_plain, done)
        assert done == ["plain", "section"]

        done.clear()
        entered = _interrupts.enter()
        try:
            try:
                _marked_section(_raise_sigint, done)
                done.append("outer")
            finally:
                _interrupts.leave(entered)
        except KeyboardInterrupt:
            done.append("interrupted")
        assert done == ["section", "outer", "interrupted"]
        assert not owed[0]


def test_another_threads_marked_section_does_not_defer_the_main_threads_sigint() -> None:
    """Only the main thread's sections defer: a thread sitting in one costs the main
    thread nothing, and ending it raises nothing there."""
    with pal.open_host("direct"):
        inside, leave = threading.Event(), threading.Event()
        outcome: list[object] = []

        def sit() -> None:
            inside.set()
            leave.wait(WAIT_S)

        def other() -> None:
            try:
                _marked_section(sit, [])
                outcome.append("ended")
            except BaseException as exc:  # pragma: no cover - the failure reported
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        try:
            assert inside.wait(WAIT_S)
            done: list[str] = []
            with pytest.raises(KeyboardInterrupt):
                _raise_sigint()
                done.append("after")
            assert done == [] and not owed[0]
        finally:
            leave.set()
            thread.join(WAIT_S)
        assert outcome == ["ended"]


def _interrupt_at_opcode(
    work: Callable[[], object], n: int, files: tuple[str, ...] | None = None
) -> bool:
    """Run ``work`` on the main thread and call the PAL's SIGINT handler at its ``n``-th
    opcode (any frame it calls, or only those of code in ``files``); True if a
    KeyboardInterrupt came out of ``work``."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if (
            event == "opcode"
            and threading.get_ident() == MAIN
            and (files is None or frame.f_code.co_filename.endswith(files))
        ):
            count += 1
            if count == n:
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    return interrupted(work, tracer)


def _opcodes(work: Callable[[], object], files: tuple[str, ...] | None = None) -> int:
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode" and (files is None or frame.f_code.co_filename.endswith(files)):
            count += 1
        return tracer

    run_traced(work, tracer)
    return count


def _noop() -> None:
    return None


# CPython 3.12.1 gives no opcode events inside the first call a function makes under a
# trace function it has just set: each helper's first, spent here.
_opcodes(_noop)
_interrupt_at_opcode(_noop, 1)


def _slots(host: pal.Host) -> int | None:
    return host.threads_in_use if isinstance(host, pal.SgxHost) else None


@pytest.mark.parametrize("call", ["thread_create", "thread_start"])
def test_interrupt_at_every_opcode_of_a_thread_start(host: pal.Host, call: str) -> None:
    """The thread runs if and only if ``record`` was called; no slot stays taken and no
    thread stays the host's that is not running."""
    go = threading.Event()
    slots = _slots(host)

    def start(recorded: list[pal.PalThread]) -> pal.PalThread:
        if call == "thread_create":
            return host.thread_create(go.wait, WAIT_S, record=recorded.append)
        return host.thread_start(go.wait, (WAIT_S,), name="t", record=recorded.append)

    probe: list[pal.PalThread] = []
    go.set()
    opcodes = _opcodes(lambda: start(probe))
    assert probe[0].join(WAIT_S)
    assert opcodes > 40
    interrupted = 0
    for n in range(1, opcodes + 1):
        go.clear()
        recorded: list[pal.PalThread] = []
        interrupted += _interrupt_at_opcode(lambda: start(recorded), n)  # noqa: B023
        assert len(recorded) <= 1, n
        # A thread the host holds is one that was recorded, and it runs (it waits on go).
        assert set(host._threads) == set(recorded), n
        for thread in recorded:
            assert thread.is_alive() and thread.ident is not None, n
        if slots is not None:
            assert _slots(host) == slots + len(recorded), n
        go.set()
        for thread in recorded:
            assert thread.join(WAIT_S), n
        assert host.live_threads() == [] and _slots(host) == slots, n
    assert not owed[0]
    assert interrupted >= opcodes * 0.5


def _eventfds_held_by_no_handle(host: pal.Host, before: set[int]) -> set[int]:
    held = {h._fd for h in host.open_handles()}
    return open_fds() - before - held


def test_interrupt_at_every_opcode_of_an_eventfd_open(host: pal.Host) -> None:
    host.close(host.stream_open("eventfd:"))  # the registry's epoll, made once
    before = open_fds()
    opened: list[pal.Handle] = []
    opcodes = _opcodes(lambda: opened.append(host.stream_open("eventfd:", nonblocking=True)))
    host.close(opened[0])
    assert opcodes > 40
    interrupted = 0
    for n in range(1, opcodes + 1):
        interrupted += _interrupt_at_opcode(
            lambda: host.stream_open("eventfd:", nonblocking=True), n
        )
        assert not _eventfds_held_by_no_handle(host, before), n
        for handle in host.open_handles():
            host.close(handle)
        assert open_fds() == before, n
    assert not owed[0]
    assert interrupted >= opcodes * 0.5


def test_interrupt_at_every_opcode_of_an_eventfd_close(host: pal.Host) -> None:
    """Closed with its descriptor, or still open and the host's: never closed with the
    descriptor left open, nor open with the descriptor gone."""
    host.close(host.stream_open("eventfd:"))
    before = open_fds()
    probe = host.stream_open("eventfd:")
    opcodes = _opcodes(lambda: host.close(probe))
    assert opcodes > 30
    interrupted = 0
    for n in range(1, opcodes + 1):
        handle = host.stream_open("eventfd:")
        interrupted += _interrupt_at_opcode(lambda: host.close(handle), n)  # noqa: B023
        if handle.closed:
            assert handle._fd not in open_fds(), n
            assert handle not in host.open_handles(), n
        else:
            assert handle in host.open_handles() and handle._fd in open_fds(), n
            host.write(handle, pal.EVENT_TOKEN)  # still usable: its identity still holds
            host.close(handle)
        assert open_fds() == before, n
    assert not owed[0]
    assert interrupted >= opcodes * 0.5


@pytest.mark.parametrize("io", ["write", "read"])
def test_interrupt_at_every_opcode_of_an_eventfd_io_racing_its_close(
    host: pal.Host, io: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read or write during which the handle is closed (the close leaves the release to
    the I/O under way): wherever a Ctrl-C lands in the PAL's I/O and close (the host
    calls' gate, outside any section on this path, is left out: CPython runs no handler
    inside its ``with``), the handle ends closed with its descriptor, and no I/O or close
    stays recorded as under way."""
    files = ("pal/_host.py", "pal/_eventfd.py")
    host.close(host.stream_open("eventfd:"))
    before = open_fds()
    name = "eventfd_write" if io == "write" else "eventfd_read"
    real = getattr(os, name)
    current: list[pal.Handle] = []

    def closing_first(fd: int, *args: Any) -> Any:
        handle = current.pop()
        host.close(handle)  # another thread's close, while this I/O is under way
        return real(fd, *args)

    def run(handle: pal.Handle) -> None:
        current[:] = [handle]
        if io == "write":
            host.write(handle, pal.EVENT_TOKEN)
        else:
            host.read(handle, 8)

    def fresh() -> pal.Handle:
        handle = host.stream_open("eventfd:", nonblocking=True)
        if io == "read":
            host.write(handle, pal.EVENT_TOKEN)
        return handle

    monkeypatch.setattr(os, name, closing_first)
    probe = fresh()
    opcodes = _opcodes(lambda: run(probe), files)
    assert probe.closed and probe._fd not in open_fds()
    assert opcodes > 40
    interrupted = 0
    for n in range(1, opcodes + 1):
        handle = fresh()
        interrupted += _interrupt_at_opcode(lambda: run(handle), n, files)  # noqa: B023
        assert not host._io and not host._closes, n
        if not handle.closed:  # interrupted before the I/O (and its close) began
            host.close(handle)
        assert handle._fd not in open_fds(), n
        assert open_fds() == before, n
    assert not owed[0]
    assert interrupted >= opcodes * 0.3
