"""Attacks on the lean thread start: shutdown against a start in flight."""

from __future__ import annotations

import _thread
import inspect
import os
import sys
import threading
import warnings
from types import FrameType
from typing import Any

import pytest

from libos_support import BOUND, descriptors_exhausted
from pylibos import pal
from pylibos.libos import LibOS, install
from pylibos.libos import _hook as hook_module
from pylibos.libos import _libos as libos_module


def _line_of(text: str) -> int:
    """The line of ``LibOS._clone`` holding ``text``."""
    lines, first = inspect.getsourcelines(libos_module.LibOS._clone)
    (offset,) = [i for i, line in enumerate(lines) if text in line]
    return first + offset


def _pausing_at(line: int, paused: threading.Event, go: threading.Event) -> Any:
    """A tracer that parks the calling thread once, at ``line`` of ``_clone``."""
    code = libos_module.LibOS._clone.__code__
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


def test_shutdown_while_a_start_is_past_its_closed_check_leaves_a_thread_running() -> None:
    """A thread that is not the LibOS's (started before the hook) starts a thread through
    the hook; it is past ``_clone``'s second ``_closed`` check, before the host thread
    starts, when the main thread shuts the LibOS down.  The new thread's entry (host
    thread not yet started) is not among those shutdown joins; shutdown's sweep takes it
    out of the table and destroys its event; then the start goes on: ``Thread.start``
    succeeds after shutdown returned, and the thread runs the program's function with its
    event closed and nobody waiting for it.  Either the start must be refused, or
    shutdown must wait for the start in flight and then for the thread."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    paused, go, body_ran, gate = (threading.Event() for _ in range(4))
    seen: dict[str, Any] = {}
    line = _line_of("if joinable is None and not reraise:")

    def body() -> None:
        seen["event_closed"] = libos.current_thread().event.closed
        seen["after_shutdown"] = libos.closed
        body_ran.set()
        gate.wait(BOUND)

    def starter() -> None:
        sys.settrace(_pausing_at(line, paused, go))
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
        libos.shutdown()  # returns: the starter is no LibOS thread
        assert not hook.installed
        go.set()
        outer.join(BOUND)
        assert not outer.is_alive()
        ran = body_ran.wait(2.0)
        # What must hold: a start that had not made its host thread when shutdown swept
        # is refused (or waited for); no LibOS thread runs after shutdown returned.
        assert "refused" in seen or not ran, (
            f"a thread started through the LibOS ran after shutdown returned: "
            f"its event closed={seen.get('event_closed')}, "
            f"libos closed={seen.get('after_shutdown')}"
        )
    finally:
        go.set()
        gate.set()
        t = seen.get("started")
        if isinstance(t, threading.Thread):
            t.join(BOUND)
        outer.join(BOUND)
        libos.shutdown()
        host.shutdown()


def test_a_pooled_event_that_cannot_be_cleared_is_lost_by_create() -> None:
    """``EventFactory.create`` pops a pooled event and clears it if it was set meanwhile
    (by whoever still held it from its last thread).  If that clear fails (the host
    closed the channel's descriptor under the PAL, and no new channel can be had), the
    ``OSError`` leaves ``create`` with the event out of the pool and never destroyed: its
    handle stays open on the host until the host itself shuts down, and no LibOS
    teardown finds it (``release`` destroys such an event; ``create`` does not)."""
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd", pool=True)
    lost = None
    try:
        first = libos.clone(lambda: None)
        assert first.join(BOUND)
        lost = first.event
        assert libos._factory._free == [lost]
        lost.set()  # a stale holder of the thread's event sets it
        os.close(lost.read_handle._fd)  # the host closes the descriptor under the PAL
        with descriptors_exhausted(0), pytest.raises(OSError, match="rebuild event channel"):
            libos.clone(lambda: None)
        pooled_or_closed = lost.closed or lost in libos._factory._free
        libos.shutdown()
        still_open = lost.read_handle in host.open_handles()
        assert pooled_or_closed and not still_open, (
            f"a pooled event create could not clear is neither pooled nor destroyed; "
            f"its handle open on the host after LibOS.shutdown: {still_open}"
        )
    finally:
        if lost is not None:
            lost.destroy()
        libos.shutdown()
        host.shutdown()


def test_a_native_thread_in_a_fork_child_is_taken_for_a_parent_libos_thread() -> None:
    """A cloned thread is found by its ident in ``LibOS._running``.  In a child forked
    while a LibOS thread L ran, L does not exist, but its entry does; the C library
    hands the stacks of the parent's threads to the child's new threads, so a native
    thread the child starts gets L's ident, and ``LibOS.current_thread()`` there answers
    L (its tid, and its event, whose channel the parent's L still sleeps on) instead of
    adopting a thread of its own.  (With the thread-local used before, the interpreter
    drops other threads' locals in the child, and the thread was adopted.)"""
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd")
    gate, running = threading.Event(), threading.Event()
    parent: dict[str, Any] = {}

    def body() -> None:
        parent["ident"] = threading.get_ident()
        parent["thread"] = libos.current_thread()
        running.set()
        gate.wait(BOUND)

    read_fd, write_fd = os.pipe()
    try:
        with install(libos):
            t = threading.Thread(target=body)
            t.start()
            assert running.wait(BOUND)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
                pid = os.fork()
            if pid == 0:  # the child: native threads, one of which gets L's ident
                code = 1
                try:
                    found: list[str] = []
                    release = _thread.allocate_lock()
                    release.acquire()
                    done = threading.Semaphore(0)

                    def native() -> None:
                        if threading.get_ident() == parent["ident"]:
                            got = libos.current_thread()
                            found.append(f"{got is parent['thread']}:{got.tid}")
                        done.release()
                        release.acquire()
                        release.release()

                    for _ in range(16):
                        hook_module._ORIGINAL_START(native, ())
                    for _ in range(16):
                        done.acquire(timeout=BOUND)
                    os.write(write_fd, (found[0] if found else "no-reuse").encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_fd)
            write_fd = -1
            answer = os.read(read_fd, 100).decode()
            _, status = os.waitpid(pid, 0)
            gate.set()
            t.join(BOUND)
        assert os.waitstatus_to_exitcode(status) == 0
        if answer == "no-reuse":
            pytest.skip("the C library gave the child's threads no parent thread's ident")
        assert not answer.startswith("True"), (
            f"a native thread of the fork child was taken for the parent's LibOS thread "
            f"(tid {parent['thread'].tid}): {answer}"
        )
    finally:
        gate.set()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        libos.shutdown()
        host.shutdown()
