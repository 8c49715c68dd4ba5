"""Ctrl-C at any point of a clone, a thread start or a descriptor's creation: nothing is
lost, nothing stays taken.

Two ways in: a real SIGINT sent to the main thread by a timer thread after a delay swept
over the length of a clone burst, and an interrupt raised through the interpreter's own
signal machinery (``_thread.interrupt_main``) at every line event of one clone, driven by
``sys.settrace``.  Both go through the same Python-level SIGINT handler a user's Ctrl-C
does.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import gc
import inspect
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import (
    BOUND,
    descriptors_exhausted,
    interrupted,
    open_fds,
    run_traced,
    wait_until,
)
from pylibos.libos import LibOS, LibOSThread, PollableEvent
from pylibos.pal import Handle, SgxHost, _interrupts, open_host

MAIN = threading.main_thread().ident


def _noop() -> None:
    return None


def _dummies() -> int:
    return sum(isinstance(t, threading._DummyThread) for t in threading.enumerate())


class _Sigints:
    """One thread that sends SIGINT to the main thread ``delay`` s after each request.  It
    sleeps, so the main thread runs meanwhile: a thread that spun instead would hold the
    GIL for the whole delay (the switch interval is longer), and the signal would land
    before the work had begun."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[float | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve)
        self._thread.start()

    def _serve(self) -> None:
        while (delay := self._requests.get()) is not None:
            time.sleep(delay)
            assert MAIN is not None
            signal.pthread_kill(MAIN, signal.SIGINT)

    def after(self, delay: float) -> None:
        self._requests.put(delay)

    def close(self) -> None:
        """Stop the thread.  After a burst that ended in another exception, the signal
        still owed to it lands here and is dropped, so that exception is the one seen."""
        self._requests.put(None)
        while True:
            try:
                self._thread.join(BOUND)
                _noop()  # a call: where the interpreter runs a signal handler still owed
                return
            except KeyboardInterrupt:
                continue


def _interrupt_bursts(work: Callable[[], None], tries: int, longest: float) -> tuple[int, int]:
    """Run ``work`` over and over until a real SIGINT stops it, ``tries`` times, with the
    signal's delay swept over [0, longest).  Returns how many interrupts landed and how
    many runs of ``work`` finished (none: the interrupts never reached the work)."""
    landed = finished = 0
    sigints = _Sigints()
    try:
        for i in range(tries):
            try:
                sigints.after(longest * ((i * 37) % tries) / tries)
                while True:
                    work()
                    finished += 1
            except KeyboardInterrupt:
                landed += 1
    finally:
        sigints.close()
    return landed, finished


class _State:
    """What a LibOS and its host hold, to compare before and after the interrupts."""

    def __init__(self, libos: LibOS) -> None:
        host = libos.host
        self.handles = set(host.open_handles())
        self.tids = {t.tid for t in libos.threads()}
        self.host_threads = {t for t in host.live_threads()}
        self.slots = host.threads_in_use if isinstance(host, SgxHost) else None
        self.dummies = _dummies()

    def assert_same(self, libos: LibOS) -> None:
        host = libos.host
        assert wait_until(lambda: {t.tid for t in libos.threads()} == self.tids), libos.threads()
        assert wait_until(lambda: set(host.live_threads()) == self.host_threads)
        assert set(host.open_handles()) == self.handles
        if isinstance(host, SgxHost):
            assert host.threads_in_use == self.slots
        assert _dummies() == self.dummies


CLONE_CONFIGS = [
    ("sgx", "raw", False),
    ("sgx", "eventfd", False),
    ("sgx", "raw", True),
    ("direct", "pipe", False),
    ("sgx", "pipe", False),
]


@pytest.mark.parametrize(
    ("kind", "events", "pool"),
    CLONE_CONFIGS,
    ids=[f"{k}/{e}{'+pool' if p else ''}" for k, e, p in CLONE_CONFIGS],
)
def test_sigint_during_clone_bursts_leaks_nothing(kind: str, events: str, pool: bool) -> None:
    fds = open_fds()
    host = open_host(kind)
    libos = LibOS(host, events, pool)
    tries = 100 if events == "pipe" and kind == "sgx" else 300
    longest = 0.004 if events == "pipe" and kind == "sgx" else 0.0015
    made: list[LibOSThread] = []
    try:
        # Fill the pool first, so what it holds afterwards is what it held before.
        warm = [libos.clone(_noop) for _ in range(4)]
        for t in warm:
            assert t.join(BOUND)
        before = _State(libos)

        def burst() -> None:
            made.append(libos.clone(_noop))
            made.pop().join(BOUND)

        landed, finished = _interrupt_bursts(burst, tries, longest)
        assert landed == tries and finished > 0
        for t in made:
            assert t._pal is None or t._pal.join(BOUND)
        if pool:
            # The event of a clone cut short goes back to the pool or is closed, as do
            # those of the threads whose joins were cut short (they ended meanwhile, so
            # the pool may now hold more than before): every handle open now was open
            # before or is a pooled event's.
            assert wait_until(lambda: {t.tid for t in libos.threads()} == before.tids)
            free = {h for ev in libos._factory._free for h in (ev.read_handle, ev._write)}
            assert set(host.open_handles()) <= before.handles | free
            before.handles = set(host.open_handles())
        before.assert_same(libos)
    finally:
        libos.shutdown()
        host.shutdown()
    assert host.open_handles() == [] and host.live_threads() == []
    assert wait_until(lambda: open_fds() <= fds), f"fds left: {open_fds() - fds}"


@pytest.mark.parametrize("uri", ["eventfd:", "pipe"])
@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_sigint_while_opening_descriptors_loses_none(kind: str, uri: str) -> None:
    """eventfd() and accept() hand back a bare descriptor: between that and its handle, a
    Ctrl-C used to lose it for good."""
    fds = open_fds()
    host = open_host(kind)
    try:

        def open_close() -> None:
            if uri == "eventfd:":
                host.close(host.stream_open(uri))
            else:
                for handle in host.create_pipe(raw=True):
                    host.close(handle)

        # The host's own descriptors first: the first eventfd makes its eventfd registry
        # (an epoll, held by the host until shutdown, by no handle).
        open_close()
        held = open_fds()
        landed, finished = _interrupt_bursts(open_close, 300, 0.001)
        assert landed == 300 and finished > 0
        # Interrupts landed between an open and its close: they left handles open.
        assert host.open_handles(), "no interrupt landed inside the work"
        # Whatever an interrupt left open is a handle the host knows, closed at shutdown.
        lost = open_fds() - held - {h._fd for h in host.open_handles()}
        assert not lost, f"descriptors no handle holds: {lost}"
    finally:
        host.shutdown()
    assert wait_until(lambda: open_fds() <= fds), f"fds left: {open_fds() - fds}"


_WITH_EXIT = ["LOAD_CONST", "LOAD_CONST", "LOAD_CONST", "PRECALL", "CALL"]
_exits: dict[CodeType, set[int]] = {}


def _with_exits(code: CodeType) -> set[int]:
    """Offsets where a ``with`` block's normal exit starts: CPython never runs a signal
    handler there (no instruction in it checks for one before ``__exit__`` has run), but
    a trace function would, and a lock released by that ``__exit__`` would stay held."""
    found = _exits.get(code)
    if found is None:
        ops = [(ins.offset, ins.opname, ins.argval) for ins in dis.get_instructions(code)]
        found = set()
        for k in range(len(ops) - 4):
            names = [op for _, op, _ in ops[k : k + 5]]
            if names == _WITH_EXIT and all(ops[k + m][2] is None for m in range(3)):
                found.add(ops[k][0])
        _exits[code] = found
    return found


_collecting = [False]


def _note_collection(phase: str, info: dict[str, int]) -> None:
    _collecting[0] = phase == "start"


def _from_the_collector(frame: FrameType) -> bool:
    """Whether ``frame`` is the garbage collector's: a callback of ``gc.callbacks``
    (hypothesis installs one) or anything a collection runs (the weak-reference callbacks
    of what it frees, such as ``WeakSet._remove`` for a dropped host), while
    ``_traced_apart`` is on; or ``_traced_apart``'s own.  A collection starts wherever an
    allocation happens to start one, so its lines are no part of the work traced, and an
    interrupt there would be the collector's (reported as unraisable), never the work's."""
    return (
        _collecting[0]
        or frame.f_code in _APART
        or any(getattr(cb, "__code__", None) is frame.f_code for cb in gc.callbacks)
    )


def _run_apart(work: Callable[[], object]) -> object:
    gc.callbacks.append(_note_collection)
    try:
        return work()
    finally:
        gc.callbacks.remove(_note_collection)
        _collecting[0] = False


_APART = {_note_collection.__code__, _run_apart.__code__}


def _traced_apart(work: Callable[[], object]) -> Callable[[], object]:
    """``work``, with collections noted (``_from_the_collector``) while it runs."""
    return functools.partial(_run_apart, work)


def _interrupt_at_line(work: Callable[[], object], n: int) -> bool:
    """Run ``work`` and deliver a SIGINT at its ``n``-th line event, as the signal handler
    would there (the real one, which defers inside a critical section); True if the
    interrupt reached the caller.  Line events where CPython could not run a handler
    (a ``with`` block's exit) are skipped, and do not count."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "call" and _from_the_collector(frame):
            return None
        if event == "line" and threading.get_ident() == MAIN:
            if frame.f_lasti in _with_exits(frame.f_code):
                return tracer
            count += 1
            if count == n:
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    return interrupted(_traced_apart(work), tracer)


def _line_events(work: Callable[[], object]) -> int:
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "call" and _from_the_collector(frame):
            return None
        if event == "line" and frame.f_lasti not in _with_exits(frame.f_code):
            count += 1
        return tracer

    run_traced(_traced_apart(work), tracer)
    return count


def _under_way_elsewhere(libos: LibOS) -> bool:
    """Whether a shutdown on another thread would find a start under way."""
    out: list[bool] = []
    asker = threading.Thread(target=lambda: out.append(libos._starts_under_way()))
    asker.start()
    asker.join(BOUND)
    return out[0]


@pytest.mark.parametrize(("kind", "events"), [("sgx", "raw"), ("sgx", "eventfd"), ("sgx", "pipe")])
def test_interrupt_at_every_line_of_a_clone(kind: str, events: str) -> None:
    fds = open_fds()
    host = open_host(kind)
    libos = LibOS(host, events)
    made: list[LibOSThread] = []
    try:
        assert libos.clone(_noop).join(BOUND)
        before = _State(libos)

        def clone() -> None:
            made.append(libos.clone(_noop))

        lines = min(_line_events(clone) for _ in range(3))
        while made:
            assert made.pop().join(BOUND)
        assert lines > 50
        interrupted = 0
        # Every line; on sgx/pipe (a TLS handshake per clone) every other line, for time.
        points = range(1, lines + 1, 2 if events == "pipe" else 1)
        for n in points:
            interrupted += _interrupt_at_line(clone, n)
            # No start is left looking under way to a shutdown on another thread (it
            # would wait for it until its time is up).
            assert not _under_way_elsewhere(libos), n
            while made:
                assert made.pop().join(BOUND)
        assert interrupted >= len(points) * 0.8  # (lines a run never reached do not count)
        before.assert_same(libos)
    finally:
        libos.shutdown()
        host.shutdown()
    assert wait_until(lambda: open_fds() <= fds), f"fds left: {open_fds() - fds}"


@pytest.mark.parametrize("what", ["eventfd", "pipe.raw", "pipe"])
@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_interrupt_at_every_line_of_a_close(kind: str, what: str) -> None:
    """A Ctrl-C anywhere in ``close``: the handle is closed with its descriptor, or still
    open and known to the host; never marked closed with its descriptor left open (a socket
    left to the garbage collector, an eventfd lost for good)."""
    fds = open_fds()
    host = open_host(kind)

    def make() -> list[Handle]:
        if what == "eventfd":
            return [host.stream_open("eventfd:")]
        return list(host.create_pipe(raw=what == "pipe.raw"))

    try:
        probe = make()
        lines = _line_events(lambda: host.close(probe[-1]))
        for handle in probe:
            host.close(handle)
        assert lines > 5
        interrupted = 0
        for n in range(1, lines + 1):
            handles = make()
            handle = handles[-1]  # a pipe's connecting end, the one that says goodbye
            interrupted += _interrupt_at_line(lambda: host.close(handle), n)  # noqa: B023
            if handle.closed:
                assert handle._sock is None or handle._sock.fileno() == -1, n
            else:
                assert handle in host.open_handles(), n
            for h in handles:
                host.close(h)
            assert handle._sock is None or handle._sock.fileno() == -1
        assert interrupted >= lines * 0.5  # a later close may take a shorter path than the probe
    finally:
        host.shutdown()
    assert wait_until(lambda: open_fds() <= fds), f"fds left: {open_fds() - fds}"


def test_interrupt_at_every_line_of_a_clone_whose_pooled_event_is_broken() -> None:
    """A Ctrl-C anywhere in a clone that pops a pooled event it cannot clear (set by a
    stale holder, its descriptor closed by the host, no descriptor left for a new
    channel): the event is still pooled, or destroyed with its handle; never out of the
    pool and open (``create`` runs inside the clone's critical section)."""
    host = open_host("sgx")
    libos = LibOS(host, "eventfd", pool=True)
    factory = libos._factory

    def broken() -> PollableEvent:
        thread = libos.clone(_noop)
        assert thread.join(BOUND)
        event = thread.event
        assert factory._free == [event]
        event.set()
        os.close(event.read_handle._fd)
        return event

    def clone() -> None:
        with contextlib.suppress(OSError):
            libos.clone(_noop)

    try:
        probe = broken()
        with descriptors_exhausted(0):
            lines = _line_events(clone)
        assert probe.closed
        assert lines > 20
        interrupted = 0
        for n in range(1, lines + 1):
            event = broken()
            with descriptors_exhausted(0):
                interrupted += _interrupt_at_line(clone, n)
            if event.closed:
                assert event not in factory._free, n
                assert event.read_handle not in host.open_handles(), n
            else:
                assert factory._free == [event], n
                factory._free.clear()
                event.destroy()
            assert [t for t in libos.threads() if t is not libos.main_thread] == [], n
        assert interrupted >= lines * 0.8
    finally:
        libos.shutdown()
        host.shutdown()


def _past_closed_check() -> int:
    """The line of ``LibOS._clone`` just past its second test of ``_closed``."""
    lines, first = inspect.getsourcelines(LibOS._clone)
    return first + next(i for i, text in enumerate(lines) if "self.host.thread_start_now(" in text)


def _shutdown_interrupted_in_its_wait(n: int) -> bool:
    """Shut a LibOS down while a start on another thread is paused past its test of
    ``_closed`` (it goes on once shutdown waits), with a SIGINT at the ``n``-th line of
    the wait; then shut down again and check the teardown is whole.  True if the
    interrupt reached the first shutdown."""
    host = open_host("sgx")
    libos = LibOS(host, "raw")
    paused, go, ran = threading.Event(), threading.Event(), threading.Event()
    made: list[LibOSThread] = []
    clone_code, line = LibOS._clone.__code__, _past_closed_check()
    waits = {LibOS._await_starts.__code__, LibOS._starts_under_way.__code__}

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line and not paused.is_set():
            paused.set()
            go.wait(BOUND)
        return local

    def starter() -> None:
        sys.settrace(lambda frame, event, arg: local if frame.f_code is clone_code else None)
        try:
            made.append(libos.clone(ran.set))
        finally:
            sys.settrace(None)

    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code not in waits:
            return tracer if event == "call" else None
        if event == "call" and frame.f_code is LibOS._await_starts.__code__:
            go.set()  # the start goes on while shutdown waits for it
        if event == "line":
            count += 1
            if count == n:
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    interrupted = False
    outer = threading.Thread(target=starter)
    outer.start()
    try:
        assert paused.wait(BOUND)
        sys.settrace(tracer)
        try:
            libos.shutdown(timeout=BOUND)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        go.set()
        libos.shutdown(timeout=BOUND)
        outer.join(BOUND)
        assert made and ran.is_set(), n
        assert made[0].join(BOUND), n
        assert libos.threads() == [], n
    finally:
        go.set()
        outer.join(BOUND)
        libos.shutdown()
        host.shutdown()
    return interrupted


def test_interrupt_in_shutdowns_wait_for_a_start_under_way() -> None:
    """A Ctrl-C at any of the first lines of shutdown's wait for a start under way on
    another thread: it reaches the caller, and a second ``shutdown`` finishes the
    teardown, waiting for that start and joining the thread it made."""
    interrupted = sum(_shutdown_interrupted_in_its_wait(n) for n in range(1, 17))
    assert interrupted >= 12
