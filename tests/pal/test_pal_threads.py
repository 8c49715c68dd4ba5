"""PalThreadCreate on both hosts, and the sgx bound on threads (``sgx.max_threads``)."""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal import PalError, PalErrorCode

from ._pal_support import WAIT_S, Background, open_fds


class TestThreadCreate:
    def test_runs_fn_with_args(self, host: pal.Host) -> None:
        seen: list[tuple[int, str]] = []
        thread = host.thread_create(lambda a, b: seen.append((a, b)), 7, "x")
        assert thread.join(WAIT_S)
        assert seen == [(7, "x")]
        assert thread.exception is None
        assert host.calls["clone_thread"] == 1

    def test_keeps_the_exception_for_the_joiner(self, host: pal.Host) -> None:
        def boom() -> None:
            raise RuntimeError("inside the thread")

        thread = host.thread_create(boom)
        assert thread.join(WAIT_S)
        assert isinstance(thread.exception, RuntimeError)
        assert thread.name == "boom"

    def test_live_threads_until_they_end(self, host: pal.Host) -> None:
        release = threading.Event()
        thread = host.thread_create(release.wait, WAIT_S)
        assert host.live_threads() == [thread]
        assert thread.ident is not None and thread.is_alive()
        release.set()
        assert thread.join(WAIT_S)
        assert host.live_threads() == []

    def test_is_the_hosts_clone_not_a_threading_thread(self, host: pal.Host) -> None:
        """The PAL starts threads with the interpreter's primitive bound at import, so a
        later replacement of ``_thread.start_new_thread`` (a thread-start hook) is not
        what the PAL calls, and ``threading`` knows nothing of the thread."""
        before = set(threading.enumerate())
        seen: list[int] = []
        release = threading.Event()

        def body() -> None:
            seen.append(_thread.get_ident())
            release.wait(WAIT_S)

        def refuse(*args: object) -> int:
            raise AssertionError("the PAL called the replaced start_new_thread")

        saved = _thread.start_new_thread
        _thread.start_new_thread = refuse
        try:
            thread = host.thread_create(body)
        finally:
            _thread.start_new_thread = saved
        try:
            assert not isinstance(thread, threading.Thread)
            assert set(threading.enumerate()) == before
        finally:
            release.set()
        assert thread.join(WAIT_S)
        assert seen == [thread.ident]

    def test_join_with_a_timeout_while_running(self, host: pal.Host) -> None:
        release = threading.Event()
        thread = host.thread_create(release.wait, WAIT_S)
        try:
            assert thread.join(0) is False
            assert thread.join(0.01) is False
            assert thread.is_alive() and "running" in repr(thread)
        finally:
            release.set()
        assert thread.join(WAIT_S) is True
        assert not thread.is_alive() and "done" in repr(thread)
        assert thread.join(0) is True  # joining again is harmless

    def test_failed_start_gives_the_slot_back(
        self, host: pal.Host, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from pylibos.pal import _thread as pal_thread

        def no_thread(*args: object) -> int:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(pal_thread, "_start_new_thread", no_thread)
        with pytest.raises(PalError) as info:
            host.thread_create(nothing)
        assert info.value.code is PalErrorCode.NOMEM
        assert host.live_threads() == []
        monkeypatch.undo()
        assert host.thread_create(nothing).join(WAIT_S)

    def test_shutdown_waits_for_threads(self, host: pal.Host) -> None:
        release = threading.Event()
        thread = host.thread_create(release.wait, WAIT_S)
        release.set()
        host.shutdown()
        assert not thread.is_alive()


def nothing() -> None:
    """A thread body that ends at once."""


def sgx_host(max_threads: int) -> pal.Host:
    host = pal.open_host("sgx", max_threads=max_threads)
    host.handshake_timeout = 0.3
    host.slot_timeout = 0.05  # NOMEM after this wait for a slot (0.25 s by default)
    return host


class TestMaxThreads:
    """``max_threads`` counts the main thread, as an enclave's TCS count does."""

    def test_bound_refuses_after_slot_timeout_and_frees_on_exit(self) -> None:
        host = sgx_host(2)
        host.handshake_timeout = 30.0  # a wait tied to handshakes would show
        release = threading.Event()
        try:
            first = host.thread_create(release.wait, WAIT_S)
            started = time.monotonic()
            with pytest.raises(PalError) as info:
                host.thread_create(nothing)
            assert host.slot_timeout <= time.monotonic() - started < host.slot_timeout + 1.0
            assert info.value.code is PalErrorCode.NOMEM
            assert "sgx.max_threads (2)" in info.value.message
            assert host.calls["clone_thread"] == 1
            release.set()
            assert first.join(WAIT_S)
            second = host.thread_create(nothing)
            assert second.join(WAIT_S)
        finally:
            release.set()
            host.shutdown()

    def test_max_threads_one_allows_no_thread(self) -> None:
        host = sgx_host(1)
        try:
            with pytest.raises(PalError) as info:
                host.thread_create(nothing)
            assert info.value.code is PalErrorCode.NOMEM
        finally:
            host.shutdown()

    def test_pipe_without_a_slot_for_its_helper_fails_cleanly(self) -> None:
        host = sgx_host(2)
        release = threading.Event()
        try:
            srv = host.stream_open("pipe.srv:full")
            busy = host.thread_create(release.wait, WAIT_S)
            fds = open_fds()
            with pytest.raises(PalError) as info:
                host.stream_open("pipe:full")
            assert info.value.code is PalErrorCode.NOMEM
            assert "handshake helper" in info.value.message
            with pytest.raises(PalError) as info:
                host.create_pipe()
            assert info.value.code is PalErrorCode.NOMEM
            assert open_fds() == fds
            assert host.open_handles() == [srv]
            # Raw pipes need no helper, so they still open.
            accepted, connecting = host.create_pipe(raw=True)
            host.close(accepted)
            host.close(connecting)
            release.set()
            assert busy.join(WAIT_S)
            accepted, connecting = host.create_pipe()
            host.write(connecting, b"ok")
            assert host.read(accepted, 2) == b"ok"
        finally:
            release.set()
            host.shutdown()

    def test_thread_create_waits_for_a_helper_at_most_slot_timeout(self) -> None:
        """A helper whose handshake does not move holds the last slot: thread_create waits
        for it at most slot_timeout, not the handshake's deadline, then fails; closing the
        pipe frees the slot."""
        host = sgx_host(2)
        try:
            host.handshake_timeout = 30.0
            srv = host.stream_open("pipe.srv:stuck")
            stuck = host.stream_open("pipe:stuck")  # its helper waits for a ClientHello
            host.slot_timeout = 0.3
            started = time.monotonic()
            with pytest.raises(PalError) as info:
                host.thread_create(nothing)
            waited = time.monotonic() - started
            assert info.value.code is PalErrorCode.NOMEM
            assert 0.3 <= waited < 0.3 + 2.0
            host.close(stuck)  # wakes the helper and joins it
            assert host.thread_create(nothing).join(WAIT_S)
            host.close(srv)
        finally:
            host.shutdown()

    def test_thread_create_gets_the_slot_of_a_helper_that_timed_out(self) -> None:
        host = sgx_host(2)
        try:
            host.handshake_timeout = 0.2
            srv = host.stream_open("pipe.srv:late")
            stuck = host.stream_open("pipe:late")
            host.handshake_timeout = host.slot_timeout = WAIT_S
            thread = host.thread_create(nothing)  # waits for the helper to give up
            assert thread.join(WAIT_S)
            with pytest.raises(PalError) as info:
                host.read(stuck, 1)
            assert info.value.code is PalErrorCode.TIMEDOUT
            host.close(stuck)
            host.close(srv)
        finally:
            host.shutdown()

    def test_thread_create_gets_the_slot_a_helper_gives_back(self) -> None:
        host = sgx_host(2)
        host.handshake_timeout = host.slot_timeout = WAIT_S
        try:
            srv = host.stream_open("pipe.srv:soon")
            connecting = host.stream_open("pipe:soon")
            creating = Background(lambda: host.thread_create(nothing))
            accepted = host.wait_for_client(srv)  # the helper's handshake ends, freeing a slot
            thread = creating.result()
            assert thread.join(WAIT_S)
            for handle in (accepted, connecting, srv):
                host.close(handle)
        finally:
            host.shutdown()


class TestCallsPerThread:
    """``thread_calls`` counts the calling thread's host calls, so a phase timed on one
    thread never counts calls that threads beside it make."""

    def test_other_threads_calls_are_not_mine(self) -> None:
        host = pal.open_host("direct")
        try:
            mine = host.thread_calls()
            fd = host.stream_open("eventfd:")
            assert host.thread_calls() == mine + 1
            theirs = Background(lambda: host.close(host.stream_open("eventfd:")))
            theirs.result()
            assert host.thread_calls() == mine + 1
            assert host.calls_total >= mine + 3
            host.close(fd)
        finally:
            host.shutdown()

    def test_a_host_threads_account_counts_its_calls_and_goes_with_it(self) -> None:
        """A host thread's calls are its own; once it has ended (and a pipe's handshake
        helper too), no account of it is left behind, however many threads ran."""
        host = pal.open_host("sgx")
        try:
            host.thread_calls()  # this thread's account
            kept = set(host._accounts)
            seen: list[int] = []

            def work() -> None:
                mine = host.thread_calls()
                host.close(host.stream_open("eventfd:"))
                seen.append(host.thread_calls() - mine)

            for _ in range(20):
                assert host.thread_create(work).join(WAIT_S)
            accepted, connecting = host.create_pipe()
            host.write(connecting, b"x")
            assert host.read(accepted, 1) == b"x"
            for handle in (accepted, connecting):
                host.close(handle)  # joins the helper
            assert seen == [2] * 20
            assert set(host._accounts) == kept
        finally:
            host.shutdown()

    def test_a_handshake_helpers_calls_are_its_creators(self) -> None:
        host = pal.open_host("sgx")
        try:
            before, before_total = host.thread_calls(), host.calls_total
            accepted, connecting = host.create_pipe()
            host.write(connecting, b"x")  # waits for the helper's handshake to finish
            assert host.read(accepted, 1) == b"x"
            for handle in (accepted, connecting):
                host.close(handle)  # joins the helper
            assert host.calls["clone_thread"] == 1 and host.calls["recv"] >= 4
            # Every call, the helper's sends and receives included, is this thread's.
            assert host.thread_calls() - before == host.calls_total - before_total
        finally:
            host.shutdown()


def _interrupt_at_opcode(code: object, n: int) -> Callable[[FrameType, str, Any], Any]:
    """A trace function raising KeyboardInterrupt at the ``n``th opcode executed in a
    frame of ``code``: a Ctrl-C landing between two bytecodes there."""
    seen = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        frame.f_trace_opcodes = True  # 3.13 takes it only from a local trace function
        if event == "opcode":
            seen += 1
            if seen == n:
                raise KeyboardInterrupt
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is code:
            frame.f_trace_opcodes = True
            return local
        return None

    return tracer


@pytest.mark.parametrize("finished_first", [False, True], ids=["waiting", "finished"])
def test_ctrl_c_at_any_point_of_join_leaves_the_thread_joinable(
    host: pal.Host, finished_first: bool
) -> None:
    """A KeyboardInterrupt landing anywhere in ``join`` (also between taking the done
    lock and giving it back) neither keeps a finished thread alive nor makes a later
    join wait out its timeout."""
    from pylibos.pal._thread import PalThread

    interrupted = 0
    for n in range(1, 60):
        release = threading.Event()
        thread = host.thread_create(release.wait, WAIT_S)
        if finished_first:
            release.set()
            deadline = time.monotonic() + WAIT_S
            while thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.001)
        else:
            timer = threading.Timer(0.002, release.set)
            timer.start()
        sys.settrace(_interrupt_at_opcode(PalThread.join.__code__, n))
        try:
            thread.join(WAIT_S)
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            sys.settrace(None)
        if not finished_first:
            timer.join(WAIT_S)
        started = time.monotonic()
        assert thread.join(WAIT_S) is True, f"Ctrl-C at opcode {n}"
        assert time.monotonic() - started < WAIT_S / 2, f"Ctrl-C at opcode {n}"
        assert not thread.is_alive(), f"Ctrl-C at opcode {n}"
    assert interrupted >= 3
