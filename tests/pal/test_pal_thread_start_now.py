"""``thread_start_now`` (the clone path's start, inside the caller's critical section) and
the creator's exit work (``at_exit``) and ``running`` record of ``thread_start``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal import PalThread, ShutDownError

from ._pal_support import WAIT_S


def test_starts_only_with_a_free_slot_and_takes_nothing_otherwise() -> None:
    with pal.open_host("sgx", max_threads=2) as host:  # the main thread and one
        assert isinstance(host, pal.SgxHost)
        go = threading.Event()
        first = host.thread_start_now(
            go.wait, (WAIT_S,), "first", None, False, None, None, None, None
        )
        assert isinstance(first, PalThread) and first.is_alive()
        in_use, live, calls = host.threads_in_use, host.live_threads(), host.calls_total
        ran: list[int] = []
        refused = host.thread_start_now(
            ran.append, (1,), "second", None, False, None, None, None, None
        )
        assert refused is None
        assert host.threads_in_use == in_use == 2
        assert host.live_threads() == live
        assert host.calls_total == calls  # no host call for a start not made
        go.set()
        assert first.join(WAIT_S)
        second = host.thread_start_now(
            ran.append, (2,), "second", None, False, None, None, None, None
        )
        assert second is not None and second.join(WAIT_S)
        assert ran == [2]


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
        started = host.thread_start_now(
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
        assert started is not None and started.join(WAIT_S)
        assert recorded == [started] and seen == [[started]]


@pytest.mark.parametrize("reraise", [False, True])
def test_builds_the_thread_as_the_constructor_does(reraise: bool) -> None:
    """``thread_start_now`` builds its ``PalThread`` in place: when ``record`` sees it,
    it holds what ``PalThread(...)`` would hold (but ``_launch``, which goes straight to
    the primitive), and it is not running yet."""
    seen: list[tuple[dict[str, Any], bool, bool]] = []

    def record(thread: PalThread) -> None:
        state = dict(vars(thread))
        seen.append((state, thread._done.locked(), thread.is_alive()))

    with pal.open_host("sgx") as host:
        thread = host.thread_start_now(int, (), "same", None, reraise, record, None, None, None)
        assert thread is not None and thread.join(WAIT_S)
        made = PalThread(int, (), host._thread_exited, "same", False, None, reraise)
        expected = dict(vars(made))
        expected.pop("_launch")
        state, locked, alive = seen[0]
        assert set(state) == set(expected)
        for key, value in expected.items():
            if key == "_done":
                continue  # a lock of its own, held in both
            assert state[key] == value, key
        assert locked and made._done.locked() and not alive
        made._done.release()
