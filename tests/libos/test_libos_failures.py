"""Failures and leftovers under load: unjoined failures, async callbacks that raise
anything, adopted threads' dummies, memory pinned by finished threads, thread slots."""

from __future__ import annotations

import _thread
import errno
import gc
import threading
from typing import Any

import pytest

from libos_support import BOUND, booted, wait_until
from pylibos.bench._measure import rss_kib
from pylibos.libos import ThreadFailed


def _dummies() -> int:
    return sum(isinstance(t, threading._DummyThread) for t in threading.enumerate())


class _Hook:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, args: Any) -> None:
        self.calls.append(args)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> _Hook:
    """``threading.excepthook`` for the test: the calls it gets."""
    installed = _Hook()
    monkeypatch.setattr(threading, "excepthook", installed)
    return installed


def test_a_failure_nobody_joins_goes_to_excepthook(hook: _Hook) -> None:
    with booted("sgx", "raw") as libos:

        def boom() -> None:
            raise ValueError("nobody joins me")

        t = libos.clone(boom, name="lonely")
        assert t._pal is not None and t._pal.join(BOUND)
        assert hook.calls == []  # not before the thread object goes: a join may come
        del t
        gc.collect()
        assert len(hook.calls) == 1
        args = hook.calls[0]
        assert args.exc_type is ValueError and str(args.exc_value) == "nobody joins me"
        assert args.thread.name == "lonely"
        assert args.exc_traceback is not None


def test_a_failure_seen_is_not_reported_again(hook: _Hook) -> None:
    with booted("sgx", "raw") as libos:

        def boom() -> None:
            raise KeyError("joined")

        joined = libos.clone(boom)
        with pytest.raises(ThreadFailed):
            joined.join(BOUND)
        looked_at = libos.clone(boom)
        assert looked_at._pal is not None and looked_at._pal.join(BOUND)
        assert isinstance(looked_at.exception, KeyError)
        del joined, looked_at
        gc.collect()
        assert hook.calls == []


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_async_callback_raising_any_exception_leaves_the_worker_running(
    exc: BaseException,
) -> None:
    with booted("sgx", "raw") as libos:
        fired = threading.Event()

        def bad() -> None:
            raise exc

        libos.install_async_event(0, bad)
        libos.install_async_event(0.01, fired.set)
        assert fired.wait(BOUND), "the worker died with the first callback"
        assert libos.async_errors == [exc]
        assert libos._async is not None and libos._async.thread is not None
        assert libos._async.thread.is_alive()


def test_async_worker_that_ended_refuses_timers() -> None:
    with booted("sgx", "raw") as libos:
        worker = libos._async
        assert worker is not None and worker.thread is not None
        worker.stop()
        assert worker.thread.join(BOUND)
        with pytest.raises(RuntimeError, match="stopped"):
            libos.install_async_event(0, lambda: None)


def test_adopted_threads_leave_no_dummy_threads() -> None:
    """Threads the LibOS did not create, on sgx/pipe events: their event is released as
    each ends (joining its TLS helper), and no _DummyThread is left behind."""
    with booted("sgx", "pipe") as libos:
        dummies, active = _dummies(), threading.active_count()
        handles = len(libos.host.open_handles())
        for _ in range(10):
            batch = [threading.Thread(target=libos.current_thread) for _ in range(20)]
            for t in batch:
                t.start()
            for t in batch:
                t.join(BOUND)
        assert wait_until(lambda: len(libos.threads()) == 1)  # the main thread
        assert wait_until(lambda: len(libos.host.open_handles()) == handles)
        assert _dummies() == dummies
        assert threading.active_count() == active


def test_finished_pipe_threads_keep_no_tls_session() -> None:
    """A kept LibOSThread of a finished sgx/pipe thread used to pin its two TLS sessions
    (about 97 KiB); its closed handles now hold none."""
    with booted("sgx", "pipe") as libos:
        gc.collect()
        before = rss_kib()
        kept = []
        for _ in range(6):
            batch = [libos.clone(lambda: None) for _ in range(50)]
            for t in batch:
                assert t.join(BOUND)
            kept += batch
        gc.collect()
        grown = rss_kib() - before
        for t in kept:
            for handle in (t.event._read, t.event._write):
                assert handle.closed and handle._tls is None
        assert grown < 30 * len(kept), f"{grown} KiB for {len(kept)} finished threads"


def test_concurrent_cloners_get_no_spurious_enomem() -> None:
    """Four threads cloning at once on sgx/pipe with max_threads=11: a thread or a
    handshake helper that finds every slot taken for a moment waits for one."""
    failures: list[OSError] = []
    with booted("sgx", "pipe", max_threads=11) as libos:

        def cloner() -> None:
            for _ in range(50):
                try:
                    assert libos.clone(lambda: None).join(BOUND)
                except OSError as exc:
                    failures.append(exc)

        cloners = [threading.Thread(target=cloner) for _ in range(4)]
        for c in cloners:
            c.start()
        for c in cloners:
            c.join(BOUND * 6)
        assert not any(c.is_alive() for c in cloners)
    assert [f for f in failures if f.errno == errno.ENOMEM] == []
    assert failures == []


@pytest.mark.parametrize("events", ["pipe", "raw"])
def test_threads_threading_does_not_know_leave_no_dummy_threads(events: str) -> None:
    """A thread started with ``_thread`` (or by C code) that uses the LibOS is adopted
    without ``threading.current_thread()``, which would register a _DummyThread for it
    that nothing removes."""
    with booted("sgx", events) as libos:
        dummies, active = _dummies(), threading.active_count()
        done = threading.Semaphore(0)
        names: list[str] = []

        def outsider() -> None:
            names.append(libos.current_thread().name)
            done.release()

        for _ in range(20):
            _thread.start_new_thread(outsider, ())
        for _ in range(20):
            assert done.acquire(timeout=BOUND)
        assert wait_until(lambda: len(libos.threads()) == 1)  # adopted ones released
        assert _dummies() == dummies
        assert threading.active_count() == active
        assert all(name.startswith("adopted-") for name in names)


@pytest.mark.parametrize("refusal", [RuntimeError, MemoryError])
def test_a_start_the_primitive_refuses_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, refusal: type[Exception]
) -> None:
    """The host may refuse a thread with ``RuntimeError`` or ``MemoryError``: either way
    no thread exists, so its slot, its host record and its LibOS table entry go."""
    from pylibos.pal import SgxHost
    from pylibos.pal import _thread as pal_thread

    with booted("sgx", "raw") as libos:
        host = libos.host
        assert isinstance(host, SgxHost)
        slots, live, table = host.threads_in_use, len(host.live_threads()), len(libos.threads())

        def refuse(*_args: object, **_kwargs: object) -> int:
            raise refusal("can't start new thread")

        monkeypatch.setattr(pal_thread, "_start_new_thread", refuse)
        monkeypatch.setattr(pal_thread, "_start_joinable_thread", refuse)
        with pytest.raises(OSError) as failed:
            libos.clone(_thread.get_ident)
        monkeypatch.undo()
        assert failed.value.errno == errno.ENOMEM, failed.value
        assert host.threads_in_use == slots, "a slot is held by a thread that never ran"
        assert len(host.live_threads()) == live
        assert len(libos.threads()) == table, "the table keeps a thread that never ran"
        assert libos.clone(_thread.get_ident).join(BOUND)
