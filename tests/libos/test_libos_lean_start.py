"""The lean thread start against shutdown, a hostile host and fork: a start under way
when the LibOS shuts down, a pooled event the host broke, a fork child's native threads."""

from __future__ import annotations

import _thread
import ctypes
import errno
import inspect
import itertools
import os
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import BOUND, descriptors_exhausted, in_fork_child, os_fork
from pylibos import pal
from pylibos.libos import LibOS, LibOSThread, PollableEvent, install
from pylibos.libos import _hook as hook_module
from pylibos.libos import _libos as libos_module
from pylibos.pal import Handle
from pylibos.pal._clone import Threads


def _line_in(fn: Any, text: str) -> int:
    """The line of function ``fn`` holding ``text`` (once)."""
    lines, first = inspect.getsourcelines(fn)
    (offset,) = [i for i, line in enumerate(lines) if text in line]
    return first + offset


def _pausing_at(code: CodeType, line: int, paused: threading.Event, go: threading.Event) -> Any:
    """A tracer that parks the calling thread once, at ``line`` of ``code``."""
    done = [False]

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == line and not done[0]:
            done[0] = True
            paused.set()
            go.wait(BOUND)
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    return tracer


def _calling(code: CodeType, then: Callable[[], object]) -> Any:
    """A tracer that calls ``then`` when a call of ``code`` begins."""

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if event == "call" and frame.f_code is code:
            then()
        return None

    return tracer


_CLONE = libos_module.LibOS._clone
# Where a start on another thread is paused while shutdown runs: inside the section that
# puts the thread in the table (it then meets the second test of ``_closed``), past that
# test, and in the PAL, on the way to the host thread's record and start.
_PAUSES = {
    "in-table": (_CLONE, "self._table[thread.tid] = thread"),
    "past-closed-check": (_CLONE, "started_now = self.host.thread_start_now("),
    "in-pal-spawn": (Threads.thread_start_now, "self._take_slot()"),
}


@pytest.mark.parametrize("where", list(_PAUSES))
def test_shutdown_waits_for_a_start_under_way_on_another_thread(where: str) -> None:
    """A thread that is not the LibOS's (started before the hook) starts a thread through
    the hook, and is paused inside the start (its thread in the table, not yet running)
    when the main thread shuts the LibOS down.  Shutdown waits for the start: either it
    is refused, or its thread runs, with its event open, and is joined before shutdown
    returns.  Never does the program's function run after shutdown returned, with its
    event closed and nobody waiting for it."""
    fn, text = _PAUSES[where]
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    paused, go, body_ran = (threading.Event() for _ in range(3))
    seen: dict[str, Any] = {}

    def body() -> None:
        seen["event_closed"] = libos.current_thread().event.closed
        body_ran.set()

    def starter() -> None:
        sys.settrace(_pausing_at(fn.__code__, _line_in(fn, text), paused, go))
        try:
            t = threading.Thread(target=body, daemon=True)
            t.start()
            seen["started"] = t
        except RuntimeError as exc:
            seen["refused"] = exc
        finally:
            sys.settrace(None)

    go_native = threading.Event()

    # Started before install: a native thread, which shutdown does not join.
    def native() -> None:
        go_native.wait(BOUND)
        starter()

    outer = threading.Thread(target=native)
    outer.start()
    try:
        hook = install(libos)
        go_native.set()
        assert paused.wait(BOUND)
        # The start goes on once shutdown waits for it (not before: shutdown must find it
        # under way).
        sys.settrace(_calling(libos_module.LibOS._await_starts.__code__, go.set))
        try:
            libos.shutdown(timeout=BOUND)
        finally:
            sys.settrace(None)
        assert go.is_set(), "shutdown did not wait for the start under way"
        assert not hook.installed
        ran = body_ran.is_set()  # by the time shutdown returned
        outer.join(BOUND)
        assert not outer.is_alive()
        started = seen.get("started")
        if where == "in-table":
            assert "refused" in seen and not ran, seen
        else:
            assert isinstance(started, threading.Thread) and ran, seen
            assert seen["event_closed"] is False
        assert libos.threads() == []
    finally:
        go.set()
        t = seen.get("started")
        if isinstance(t, threading.Thread):
            t.join(BOUND)
        outer.join(BOUND)
        libos.shutdown()
        host.shutdown()


def test_shutdown_gives_up_on_a_start_stuck_past_its_time() -> None:
    """A start paused past its test of ``_closed`` for longer than shutdown's timeout:
    shutdown returns within its time all the same (it does not wait for the start for
    ever), and the start, resumed, ends (started, as a thread that outlived shutdown is
    left running) without hanging its caller."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    paused, go, body_ran = (threading.Event() for _ in range(3))
    line = _line_in(_CLONE, "started_now = self.host.thread_start_now(")
    made: list[LibOSThread] = []

    def starter() -> None:
        sys.settrace(_pausing_at(_CLONE.__code__, line, paused, go))
        try:
            made.append(libos.clone(body_ran.set))
        finally:
            sys.settrace(None)

    outer = threading.Thread(target=starter)
    outer.start()
    try:
        assert paused.wait(BOUND)
        libos.shutdown(timeout=0.2)
        assert not go.is_set() and outer.is_alive()  # shutdown returned, start still paused
        go.set()
        outer.join(BOUND)
        assert not outer.is_alive()
        assert made and made[0].join(BOUND) and body_ran.is_set()
    finally:
        go.set()
        outer.join(BOUND)
        for thread in made:
            thread.join(BOUND)
        libos.shutdown()
        host.shutdown()


def test_only_other_threads_starts_count_as_under_way() -> None:
    """Shutdown waits for starts under way on other threads only: one under its own
    caller (a signal handler that shuts down, run inside a start) cannot go on before
    shutdown returns, and waiting for it would only cost the whole timeout.  From another
    thread, the same start counts; once it is done, none does."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    code = _CLONE.__code__
    line = _line_in(_CLONE, "started_now = self.host.thread_start_now(")
    answers: dict[str, bool] = {}

    def ask_elsewhere() -> bool:
        out: list[bool] = []
        asker = threading.Thread(target=lambda: out.append(libos._starts_under_way()))
        asker.start()
        asker.join(BOUND)
        return out[0]

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == line and not answers:
            answers["here"] = libos._starts_under_way()
            answers["elsewhere"] = ask_elsewhere()
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    try:
        sys.settrace(tracer)
        try:
            thread = libos.clone(lambda: None)
        finally:
            sys.settrace(None)
        assert thread.join(BOUND)
        assert answers == {"here": False, "elsewhere": True}
        assert not ask_elsewhere()
    finally:
        libos.shutdown()
        host.shutdown()


def _broken_pooled_event(libos: LibOS) -> PollableEvent:
    """The one pooled event of a fresh pooled ``libos``, set by a stale holder, its
    descriptor closed by the host under the PAL: clearing it needs a new channel."""
    first = libos.clone(lambda: None)
    assert first.join(BOUND)
    broken = first.event
    assert libos._factory._free == [broken]
    broken.set()  # a stale holder of the thread's event sets it
    os.close(broken.read_handle._fd)  # the host closes the descriptor under the PAL
    return broken


def test_a_pooled_event_that_cannot_be_cleared_is_destroyed_by_create() -> None:
    """``EventFactory.create`` pops a pooled event and clears it if it was set meanwhile
    (by whoever still held it from its last thread).  If that clear fails (the host
    closed the channel's descriptor under the PAL, and no new channel can be had), the
    event, out of the pool and no one's, is destroyed there (its handle closed on the
    host), and ``create`` tries a fresh one, which fails here with EMFILE: the clone
    raises ``OSError`` and leaves nothing behind."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd", pool=True)
    broken = None
    try:
        broken = _broken_pooled_event(libos)
        with descriptors_exhausted(0), pytest.raises(OSError) as raised:
            libos.clone(lambda: None)
        assert raised.value.errno == errno.EMFILE
        assert broken.closed and broken not in libos._factory._free
        assert broken.read_handle not in host.open_handles()
        assert [t for t in libos.threads() if t is not libos.main_thread] == []
    finally:
        if broken is not None:
            broken.destroy()
        libos.shutdown()
        host.shutdown()


def test_a_pooled_event_that_cannot_be_cleared_gives_way_to_a_fresh_one() -> None:
    """The same broken pooled event, when the rebuild of its channel fails but a fresh
    event can be had after all (the host freed a descriptor meanwhile): the broken one is
    destroyed and the thread starts with a fresh event, clear, whose channel works."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd", pool=True)
    broken = None
    try:
        broken = _broken_pooled_event(libos)
        factory = libos._factory
        fail_once = [True]
        remake = factory._channel

        def refuse_once() -> tuple[Handle, Handle]:
            # The host is out of descriptors for the rebuild, then frees one.
            if fail_once[0]:
                fail_once[0] = False
                with descriptors_exhausted(0):
                    return remake()
            return remake()

        broken._remake = refuse_once
        woke = threading.Event()

        def body() -> None:
            event = libos.current_thread().event
            assert not event.is_set()
            event.set()
            assert event.wait(BOUND)
            woke.set()

        thread = libos.clone(body)
        assert thread.join(BOUND) and woke.is_set()
        assert thread.exception is None
        assert thread.event is not broken
        assert broken.closed and broken.read_handle not in host.open_handles()
    finally:
        if broken is not None:
            broken.destroy()
        libos.shutdown()
        host.shutdown()


def _libc_fork() -> int:
    # ``PyDLL``: the GIL held across it, as a C extension forking would; no fork hook runs.
    libc_fork = ctypes.PyDLL(None).fork
    libc_fork.restype = ctypes.c_int
    return int(libc_fork())


_FORK_TRIES = 3


@pytest.mark.parametrize("how", ["os.fork", "a libc fork"])
def test_a_native_thread_in_a_fork_child_is_not_taken_for_a_parent_libos_thread(how: str) -> None:
    """A cloned thread is found by its ident in ``LibOS._running``.  In a child forked
    while a LibOS thread L ran, L does not exist; the C library hands the stacks of the
    parent's threads to the child's new threads, so a native thread the child starts may
    get L's ident.  ``LibOS.current_thread()`` there must adopt a thread of its own, not
    answer L (its tid, and its event, whose channel the parent's L still sleeps on).
    After ``os.fork`` the child's copy of the LibOS forgets every thread but the forking
    one (a fork hook); a fork made below Python runs no hook, so ``current_thread`` also
    compares the pid with the one ``_running`` belongs to (docs/robustness.md).  The
    child uses only ``_thread`` locks and ``itertools.count``, which need no fork hook."""
    fork = os_fork if how == "os.fork" else _libc_fork
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd")
    gate, running = threading.Event(), threading.Event()
    parent: dict[str, Any] = {}

    def body() -> None:
        parent["ident"] = threading.get_ident()
        parent["thread"] = libos.current_thread()
        running.set()
        gate.wait(BOUND)

    def child() -> str:  # pragma: no cover - runs in the fork child
        found: list[str] = []
        release = _thread.allocate_lock()
        release.acquire()
        done = _thread.allocate_lock()
        arrivals = itertools.count(1)  # next() is one step

        def native() -> None:
            if threading.get_ident() == parent["ident"]:
                got = libos.current_thread()
                found.append(f"{got is parent['thread']}:{got.tid}")
            if next(arrivals) == 16:
                done.release()
            release.acquire()
            release.release()

        done.acquire()
        for _ in range(16):
            hook_module._ORIGINAL_START(native, ())
        done.acquire(timeout=BOUND)
        return found[0] if found else "no-reuse"

    answers: list[str] = []
    try:
        with install(libos):
            t = threading.Thread(target=body)
            t.start()
            assert running.wait(BOUND)
            # After a fork below Python no hook makes a lock anew: a lock some thread of
            # the parent held at that moment stays held in the child (documented), and
            # the child may hang on it.  That is not what this test is about: a child
            # that hangs is killed and the fork made again, up to three times.
            for _ in range(_FORK_TRIES):
                answers.append(in_fork_child(child, BOUND, fork))
                if not answers[-1].startswith("the child hung"):
                    break
            gate.set()
            t.join(BOUND)
        answer = answers[-1]
        assert not answer.startswith("the child"), answers
        if answer == "no-reuse":
            pytest.skip("the C library gave the child's threads no parent thread's ident")
        assert not answer.startswith("True"), (
            f"after {how}, a native thread of the child was taken for the parent's "
            f"LibOS thread (tid {parent['thread'].tid}): {answer}"
        )
    finally:
        gate.set()
        libos.shutdown()
        host.shutdown()
