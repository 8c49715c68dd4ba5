"""Booting and shutting down a LibOS: event kinds, defaults, workers, release of all."""

from __future__ import annotations

import errno
import threading

import pytest

from libos_support import BOUND, CONFIG_IDS, CONFIGS, Parked, assert_released, booted, wait_until
from pylibos.libos import EVENT_KINDS, LibOS, default_events
from pylibos.pal import HOST_KINDS, ShutDownError, open_host


@pytest.mark.parametrize(("kind", "events"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("pool", [False, True], ids=["", "pool"])
def test_boot_and_shutdown(kind: str, events: str, pool: bool) -> None:
    host = open_host(kind)
    try:
        libos = LibOS(host, events=events, pool=pool)
        assert (libos.events, libos.pool, libos.host) == (events, pool, host)
        assert repr(libos) == f"<LibOS {kind}/{events}{'+pool' if pool else ''}>"
        # The async and IPC workers run on two host threads.
        assert libos._async is not None and libos._async.thread is not None
        assert libos._async.thread.is_alive()
        assert libos.ipc_worker.thread is not None and libos.ipc_worker.thread.is_alive()
        # (A pipe's handshake helper may still be on its way out: it is not a worker.)
        assert len([t for t in host.live_threads() if not t.helper]) == 2
        assert [t.tid for t in libos.threads()] == [libos.main_thread.tid]
        assert libos.current_thread() is libos.main_thread
        for event in (libos.main_thread.event, libos._async._event, libos.ipc_worker._event):
            assert event.kind == events
        libos.shutdown()
        assert libos.closed
        assert_released(host)
        libos.shutdown()  # twice is harmless
    finally:
        host.shutdown()


@pytest.mark.parametrize(("kind", "expected"), [("sgx", "raw"), ("direct", "pipe")])
def test_default_events(kind: str, expected: str) -> None:
    with booted(kind) as libos:
        assert libos.events == expected == default_events(libos.host)
        assert libos.main_thread.event.kind == expected


@pytest.mark.parametrize("kind", HOST_KINDS)
@pytest.mark.parametrize("bad", ["tls", "", "PIPE", "futex"])
def test_bad_events_name(kind: str, bad: str) -> None:
    with open_host(kind) as host:
        with pytest.raises(ValueError, match="choose one of") as info:
            LibOS(host, events=bad)
        for name in EVENT_KINDS:
            assert name in str(info.value)
        assert repr(bad) in str(info.value)
        assert host.open_handles() == [] and host.live_threads() == []


def test_not_a_host() -> None:
    with pytest.raises(TypeError, match="PAL host"):
        LibOS("sgx")  # type: ignore[arg-type]


def test_closed_host() -> None:
    host = open_host("direct")
    host.shutdown()
    with pytest.raises(ShutDownError, match="shut down"):
        LibOS(host)


@pytest.mark.parametrize("kind", HOST_KINDS)
def test_context_manager(kind: str) -> None:
    with open_host(kind) as host:
        with LibOS(host) as libos:
            assert not libos.closed
            t = libos.clone(lambda: None)
            assert t.join(BOUND)
        assert libos.closed
        assert_released(host)
        with pytest.raises(RuntimeError, match="shut down"):
            libos.clone(lambda: None)
        with pytest.raises(RuntimeError, match="shut down"):
            libos.epoll()


def test_shutdown_restores_the_hosts_phase_hook() -> None:
    with open_host("sgx") as host:
        before = host.phase
        with LibOS(host) as libos:
            assert host.phase == libos.profile.phase
        assert host.phase == before


@pytest.mark.parametrize("events", EVENT_KINDS)
@pytest.mark.parametrize("max_threads", [1, 2])
def test_boot_failure_leaves_nothing(events: str, max_threads: int) -> None:
    """No slot for the async worker (1) or the IPC worker (2; or, with pipe events, for
    the handshake helper of its event): boot fails with ENOMEM and undoes everything,
    the IPC listener included."""
    with open_host("sgx", max_threads=max_threads) as host:
        host.slot_timeout = 0.05  # ENOMEM after this wait for a slot (0.25 s by default)
        with pytest.raises(OSError) as info:
            LibOS(host, events)
        assert info.value.errno == errno.ENOMEM
        assert_released(host)


def test_ipc_name_clash_leaves_nothing() -> None:
    with open_host("sgx") as host, LibOS(host, ipc_name="same") as first:
        held = host.open_handles()
        with pytest.raises(FileExistsError):
            LibOS(host, ipc_name="same")
        assert set(host.open_handles()) == set(held)
        assert first.ipc_name == "same"


def test_adopted_thread_is_released_when_it_ends() -> None:
    with open_host("direct") as host:
        with LibOS(host) as libos:
            handles_before = len(host.open_handles())
            got: list[int] = []
            done = threading.Event()

            def outsider() -> None:
                got.append(libos.current_thread().tid)
                got.append(libos.current_thread().tid)  # adopted once only
                done.set()

            thread = threading.Thread(target=outsider)
            thread.start()
            assert done.wait(BOUND)
            thread.join(BOUND)
            assert not thread.is_alive()
            assert got[0] == got[1] != libos.main_thread.tid
            # Its tid and its event go with the thread, not only at shutdown.
            assert wait_until(lambda: libos.thread_by_tid(got[0]) is None)
            assert len(host.open_handles()) == handles_before
        assert_released(host)


def test_adopted_thread_still_alive_is_released_at_shutdown() -> None:
    with open_host("direct") as host:
        libos = LibOS(host)
        adopted, release = threading.Event(), threading.Event()

        def outsider() -> None:
            libos.current_thread()
            adopted.set()
            release.wait(BOUND)

        thread = threading.Thread(target=outsider)
        thread.start()
        try:
            assert adopted.wait(BOUND)
            assert len(libos.threads()) == 2
            libos.shutdown()
            assert_released(host)
        finally:
            release.set()
            thread.join(BOUND)


def test_shutdown_waits_for_running_threads() -> None:
    with open_host("sgx") as host:
        libos = LibOS(host)
        parked = Parked()
        t = libos.clone(parked)
        assert parked.started()
        # Release the thread from another thread while shutdown is waiting for it.
        releaser = threading.Timer(0.05, parked.release)
        releaser.start()
        libos.shutdown()
        releaser.join(BOUND)
        assert t.join(0)
        assert_released(host)
        assert wait_until(lambda: not releaser.is_alive())
