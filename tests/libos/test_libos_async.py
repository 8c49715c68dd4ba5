"""The async worker: timers in deadline order, prompt wakeup for an earlier timer,
cancellation, and callbacks that fail."""

from __future__ import annotations

import functools
import math
import threading
import time

import pytest

from libos_support import BOUND, INJECTABLE, INJECTABLE_IDS, booted, inject
from pylibos.libos import LibOS


def test_timers_fire_in_deadline_order(libos: LibOS) -> None:
    fired: list[str] = []
    all_fired = threading.Event()

    def cb(name: str) -> None:
        fired.append(name)
        if len(fired) == 4:
            all_fired.set()

    for name, delay in [("c", 0.12), ("a", 0.04), ("d", 0.16), ("b", 0.08)]:
        libos.install_async_event(delay, functools.partial(cb, name))
    assert all_fired.wait(BOUND)
    assert fired == ["a", "b", "c", "d"]


def test_timer_fires_on_the_async_worker_not_before_its_deadline(libos: LibOS) -> None:
    at: list[float] = []
    who: list[int | None] = []
    done = threading.Event()

    def cb() -> None:
        at.append(time.monotonic())
        who.append(threading.get_ident())
        done.set()

    t0 = time.monotonic()
    libos.install_async_event(0.05, cb)
    assert done.wait(BOUND)
    assert at[0] - t0 >= 0.05
    assert libos._async is not None and libos._async.thread is not None
    assert who == [libos._async.thread.ident]


def test_zero_delays_fire_in_install_order(libos: LibOS) -> None:
    fired: list[int] = []
    done = threading.Event()
    for i in range(5):
        libos.install_async_event(0, functools.partial(fired.append, i))
    libos.install_async_event(0.01, done.set)
    assert done.wait(BOUND)
    assert fired == [0, 1, 2, 3, 4]


def test_an_earlier_timer_wakes_the_worker(libos: LibOS) -> None:
    """The worker sleeps until the 30 s deadline; installing a 10 ms timer must wake it,
    or the wait below runs out."""
    late = libos.install_async_event(30, lambda: None)
    assert libos._async is not None
    early = threading.Event()
    t0 = time.monotonic()
    libos.install_async_event(0.01, early.set)
    assert early.wait(BOUND)
    assert time.monotonic() - t0 < BOUND
    assert libos._async.pending == 1
    assert libos.cancel_async_event(late) is True
    assert libos._async.pending == 0


def test_cancel(libos: LibOS) -> None:
    fired: list[str] = []
    done = threading.Event()
    doomed = libos.install_async_event(0.02, lambda: fired.append("cancelled"))
    assert libos.cancel_async_event(doomed) is True
    assert libos.cancel_async_event(doomed) is False
    assert libos.cancel_async_event(12345) is False

    def marker() -> None:
        fired.append("marker")
        done.set()

    # Timers fire in deadline order: had the cancelled one been kept, it would come first.
    libos.install_async_event(0.05, marker)
    assert done.wait(BOUND)
    assert fired == ["marker"]


def test_cancel_after_firing(libos: LibOS) -> None:
    done = threading.Event()
    timer = libos.install_async_event(0, done.set)
    assert done.wait(BOUND)
    assert libos.cancel_async_event(timer) is False


@pytest.mark.parametrize("delay", [-1, -0.001, math.nan, math.inf, "1", None])
def test_bad_delay(libos: LibOS, delay: object) -> None:
    with pytest.raises(ValueError, match="delay"):
        libos.install_async_event(delay, lambda: None)  # type: ignore[arg-type]
    assert libos._async is not None and libos._async.pending == 0


def test_callback_not_callable(libos: LibOS) -> None:
    with pytest.raises(TypeError, match="callable"):
        libos.install_async_event(0, "nope")  # type: ignore[arg-type]


def test_callback_exceptions_are_kept(libos: LibOS) -> None:
    boom = RuntimeError("boom")

    def bad() -> None:
        raise boom

    done = threading.Event()
    libos.install_async_event(0, bad)
    libos.install_async_event(0.01, done.set)
    assert done.wait(BOUND), "the worker died with the callback"
    assert libos.async_errors == [boom]
    errors = libos.async_errors
    errors.clear()  # a copy
    assert libos.async_errors == [boom]


def test_install_after_shutdown() -> None:
    with booted("direct") as libos:
        pass
    with pytest.raises(RuntimeError, match="stopped"):
        libos.install_async_event(0, lambda: None)


def test_shutdown_with_pending_timers() -> None:
    fired: list[int] = []
    with booted("sgx") as libos:
        libos.install_async_event(30, lambda: fired.append(1))
    assert fired == []


@pytest.mark.parametrize(("kind", "events"), INJECTABLE, ids=INJECTABLE_IDS)
def test_forged_wakeups_do_not_fire_timers_early(kind: str, events: str) -> None:
    with booted(kind, events) as libos:
        at: list[float] = []
        done = threading.Event()

        def cb() -> None:
            at.append(time.monotonic())
            done.set()

        assert libos._async is not None
        t0 = time.monotonic()
        libos.install_async_event(0.2, cb)
        while not done.wait(0.005):
            inject(libos._async._event, 4)
        assert at[0] - t0 >= 0.2
        assert libos.async_errors == []


def test_worker_survives_forged_bytes_on_a_tls_event_channel() -> None:
    """sgx/pipe: bytes the host forges into the worker's TLS channel break that session;
    the worker's event takes a new channel and timers keep firing."""
    with booted("sgx", "pipe") as libos:
        worker = libos._async
        assert worker is not None
        broken = worker._event.read_handle
        inject(worker._event, 7)
        fired = threading.Event()
        libos.install_async_event(0.01, fired.set)
        assert fired.wait(BOUND)
        assert worker._event.rebuilt >= 1 and worker._event.read_handle is not broken
        assert libos.async_errors == []
