"""``thread_start_now`` (the clone path's start, inside the caller's critical section) and
the creator's exit work (``at_exit``) and ``running`` record of ``thread_start``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal import PalThread, ShutDownError

from ._pal_support import WAIT_S, start_without_an_account


def test_starts_only_with_a_free_slot_and_takes_nothing_otherwise() -> None:
    with pal.open_host("sgx", max_threads=2) as host:  # the main thread and one
        assert isinstance(host, pal.SgxHost)
        go = threading.Event()
        made: list[PalThread] = []
        assert host.thread_start_now(
            go.wait, (WAIT_S,), "first", None, False, made.append, None, None, None
        )  # started: ``record`` has the thread
        first = made[0]
        assert first.is_alive()
        in_use, live, calls = host.threads_in_use, host.live_threads(), host.calls_total
        ran: list[int] = []
        assert not host.thread_start_now(
            ran.append, (1,), "second", None, False, made.append, None, None, None
        )
        assert made == [first]
        assert host.threads_in_use == in_use == 2
        assert host.live_threads() == live
        assert host.calls_total == calls  # no host call for a start not made
        go.set()
        assert first.join(WAIT_S)
        assert host.thread_start_now(
            ran.append, (2,), "second", None, False, made.append, None, None, None
        )
        assert made[1].join(WAIT_S)
        assert ran == [2]


def test_a_slot_wait_returns_once_a_slot_comes_free() -> None:
    """With no slot free, a ``SlotWait`` returns when one comes free, and the start then
    succeeds."""
    with pal.open_host("sgx", max_threads=2) as host:
        host.slot_timeout = WAIT_S
        go = threading.Event()
        made: list[PalThread] = []
        assert host.thread_start_now(
            go.wait, (WAIT_S,), "first", None, False, made.append, None, None, None
        )
        ran: list[int] = []
        assert not host.thread_start_now(
            ran.append, (1,), "second", None, False, made.append, None, None, None
        )
        freer = threading.Timer(0.05, go.set)
        freer.start()
        try:
            host.slot_wait().wait()
        finally:
            freer.join(WAIT_S)
        assert made[0].join(WAIT_S)
        assert host.thread_start_now(
            ran.append, (1,), "second", None, False, made.append, None, None, None
        )
        assert made[1].join(WAIT_S) and ran == [1]


def test_a_slot_wait_keeps_one_deadline_and_fails_with_nomem() -> None:
    with pal.open_host("sgx", max_threads=1) as host:
        host.slot_timeout = 0.05
        assert not host.thread_start_now(int, (), "x", None, False, None, None, None, None)
        wait = host.slot_wait()
        with pytest.raises(pal.PalError) as info:
            wait.wait()
        assert info.value.code is pal.PalErrorCode.NOMEM
        with pytest.raises(pal.PalError):  # the deadline has passed: at once
            wait.wait()
        assert host.live_threads() == []


def test_a_slot_wait_on_a_host_shut_down_fails_with_shutdown() -> None:
    host = pal.open_host("sgx", max_threads=1)
    host.slot_timeout = WAIT_S
    host.shutdown()
    with pytest.raises(ShutDownError):
        host.slot_wait().wait()


def test_a_pal_thread_is_made_only_by_its_host() -> None:
    """``PalThread`` has no constructor of its own (the host builds it in place): a
    hand-made one is refused with the interpreter's own error, not half made."""
    with pytest.raises(TypeError):
        PalThread(int, (), lambda t: None, "x")  # type: ignore[call-arg]


def test_refused_on_a_host_shut_down() -> None:
    host = pal.open_host("direct")
    host.shutdown()
    with pytest.raises(ShutDownError):
        host.thread_start_now(print, (), "x", None, False, None, None, None, None)


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
def test_at_exit_and_running_frame_the_function(host: pal.Host, fails: bool) -> None:
    """The tag is listed under the thread's ident while ``fn`` runs and through
    ``at_exit``; ``at_exit`` sees what ``fn`` raised, and a join returns after it."""
    running: dict[int, Any] = {}
    tag = object()
    seen: dict[str, Any] = {}

    def fn() -> None:
        seen["in_fn"] = running.get(threading.get_ident())
        if fails:
            raise ValueError("in fn")

    def at_exit(thread: PalThread, got: object) -> None:
        seen["tag"] = got
        seen["during_exit"] = dict(running)
        seen["exception"] = thread.exception
        seen["alive"] = thread.is_alive()

    thread = host.thread_start(fn, (), "t", None, False, None, at_exit, running, tag)
    assert thread.join(WAIT_S)
    assert seen["in_fn"] is tag and seen["tag"] is tag
    assert seen["during_exit"] == {thread.ident: tag}
    assert seen["alive"] is True  # the exit work runs before the thread counts as ended
    assert isinstance(seen["exception"], ValueError) == fails
    assert running == {}
    assert thread._launch is None  # nothing of the creator's is held after the start


def test_record_has_the_thread_before_it_runs() -> None:
    """Another thread may look at the started thread before ``thread_start_now``
    returns to its caller: ``record`` gives the caller's object the thread first."""
    with pal.open_host("direct") as host:
        recorded: list[PalThread] = []
        seen: list[list[PalThread]] = []
        assert host.thread_start_now(
            lambda: seen.append(list(recorded)),
            (),
            "recorded",
            None,
            False,
            recorded.append,
            None,
            None,
            None,
        )
        assert recorded[0].join(WAIT_S)
        assert len(recorded) == 1 and seen == [recorded]


@pytest.mark.parametrize("reraise", [False, True])
def test_the_thread_record_sees_is_built_and_not_yet_running(reraise: bool) -> None:
    """``thread_start_now`` builds its ``PalThread`` in place: when ``record`` sees it,
    it holds its name, exit hook and options, its done lock is held, and it does not
    run yet."""
    seen: list[tuple[dict[str, Any], bool, bool]] = []

    def record(thread: PalThread) -> None:
        seen.append((dict(vars(thread)), thread._done.locked(), thread.is_alive()))

    with pal.open_host("sgx") as host:
        made: list[PalThread] = []

        def both(thread: PalThread) -> None:
            record(thread)
            made.append(thread)

        assert host.thread_start_now(int, (), "same", None, reraise, both, None, None, None)
        assert made[0].join(WAIT_S)
        state, locked, alive = seen[0]
        expected = {"name", "_on_exit", "_done"} | ({"_reraise"} if reraise else set())
        assert set(state) == expected
        assert state["name"] == "same" and state["_on_exit"] == host._thread_exited
        assert locked and not alive


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_start_whose_host_call_cannot_be_counted_is_undone(kind: str) -> None:
    """The clone_thread host call is counted in the start itself: a MemoryError making the
    creator's account leaves no thread, no slot and no record behind, as a refusal by
    the primitive does."""
    host = pal.open_host(kind)

    try:
        in_use = getattr(host, "threads_in_use", None)
        outcome = start_without_an_account(host, WAIT_S)
        assert len(outcome) == 1 and isinstance(outcome[0], pal.PalError), outcome
        assert outcome[0].code is pal.PalErrorCode.NOMEM
        assert host.live_threads() == []
        assert getattr(host, "threads_in_use", None) == in_use
        assert host.thread_create(outcome.append, "ran").join(WAIT_S)
        assert outcome[-1] == "ran"
    finally:
        host.shutdown()
