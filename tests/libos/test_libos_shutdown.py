"""Shutdown under load: the host shut down before the LibOS, threads that will not end,
and the overall bound on both shutdowns."""

from __future__ import annotations

import errno
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from libos_support import BOUND, CONFIG_IDS, CONFIGS, Parked, open_fds, spying, wait_until
from pylibos.libos import LibOS, install
from pylibos.pal import PalError, PalErrorCode, SgxHost, ShutDownError, open_host

SLACK = 0.5
"""How far past its timeout a shutdown may end (the issue's target)."""


@pytest.mark.parametrize(("kind", "events"), CONFIGS, ids=CONFIG_IDS)
def test_host_shut_down_first_wakes_every_sleeper(kind: str, events: str) -> None:
    """Seven LibOS threads asleep on their events, and the host goes first: its shutdown
    wakes them all (closing a descriptor does not wake a poll on it), within its timeout;
    the LibOS's shutdown then completes and leaves nothing behind."""
    fds = open_fds()
    host = open_host(kind)
    libos = LibOS(host, events)
    failures: list[BaseException] = []
    try:
        with spying(host) as spy:
            idents: list[int] = []

            def sleeper() -> None:
                idents.append(threading.get_ident())
                try:
                    libos.current_thread().event.wait(BOUND * 3)
                except OSError as exc:
                    failures.append(exc)

            threads = [libos.clone(sleeper) for _ in range(7)]
            assert spy.wait_for(
                lambda calls: len({i for i, _ in calls if i in idents}) == 7 == len(idents)
            )
        t0 = time.monotonic()
        host.shutdown(timeout=2.0)
        took = time.monotonic() - t0
        assert took <= 2.0 + SLACK, f"host.shutdown took {took:.1f} s"
        assert host.live_threads() == []
        assert all(not t.is_alive() for t in threads)
        assert len(failures) == 7 and all(
            isinstance(f, OSError) and f.errno == errno.EBADF for f in failures
        )
        t0 = time.monotonic()
        libos.shutdown(timeout=2.0)  # raises nothing: the host's errors are expected
        assert time.monotonic() - t0 <= 2.0 + SLACK
        assert libos.threads() == [] and host.open_handles() == []
    finally:
        libos.shutdown()
        host.shutdown()
    assert wait_until(lambda: open_fds() <= fds), f"fds left: {open_fds() - fds}"


@pytest.mark.parametrize("layer", ["libos", "host"])
@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_shutdown_timeout_is_overall(kind: str, layer: str) -> None:
    """Six threads blocked on an Event (nothing the LibOS or the host can wake): shutdown
    gives up on them together within its timeout, not one timeout each; the LibOS closes
    their events and drops them from its thread table, the host leaves them running."""
    host = open_host(kind)
    libos = LibOS(host) if layer == "libos" else None
    start: Callable[[Parked], Any] = host.thread_create if libos is None else libos.clone
    stuck = Parked(wait=BOUND * 3)
    threads = []
    try:
        threads = [start(stuck) for _ in range(6)]
        assert stuck.started(len(threads))
        t0 = time.monotonic()
        (host if libos is None else libos).shutdown(timeout=0.3)
        took = time.monotonic() - t0
        assert took <= 0.3 + SLACK, f"{layer} shutdown took {took:.1f} s"
        if libos is None:
            assert len(host.live_threads()) == 6
        else:
            assert all(t.is_alive() for t in threads)
            assert libos.threads() == []
            assert host.open_handles() == []
    finally:
        stuck.release()
        for t in threads:
            t.join(BOUND)
        if libos is not None:
            libos.shutdown()
        host.shutdown()
    assert host.live_threads() == []


@pytest.mark.parametrize("host_first", [False, True], ids=["libos-first", "host-first"])
@pytest.mark.parametrize(("kind", "events"), CONFIGS, ids=CONFIG_IDS)
def test_either_order_leaves_nothing(kind: str, events: str, host_first: bool) -> None:
    """LibOS first or host first, with threads asleep, running and done."""
    fds = open_fds()
    host = open_host(kind)
    libos = LibOS(host, events)
    go = threading.Event()
    done = libos.clone(lambda: None)
    assert done.join(BOUND)
    asleep = [libos.clone(lambda: libos.current_thread().event.wait(BOUND)) for _ in range(3)]
    running = [libos.clone(go.wait, BOUND) for _ in range(2)]
    t0 = time.monotonic()
    first, second = (host, libos) if host_first else (libos, host)
    first.shutdown(timeout=0.1)  # the running threads hold it this long
    go.set()
    second.shutdown(timeout=1.0)
    assert time.monotonic() - t0 <= 1.1 + 2 * SLACK
    for t in asleep + running:
        assert t._pal is not None and t._pal.join(BOUND)
    for t in asleep:
        # Host first: its waits fail (EBADF), and the failure is the thread's to report.
        failure = t.exception
        assert failure is None or (isinstance(failure, OSError) and failure.errno == errno.EBADF)
    assert host.open_handles() == [] and host.live_threads() == []
    if isinstance(host, SgxHost):
        assert host.threads_in_use == 1  # the main thread's slot alone
    assert libos.threads() == []
    assert wait_until(lambda: open_fds() <= fds), f"fds left: {open_fds() - fds}"


def test_oserror_keeps_the_pal_error_as_its_cause() -> None:
    with open_host("sgx", max_threads=3) as host, LibOS(host) as libos:
        host.slot_timeout = 0.05  # ENOMEM after this wait for a slot (0.25 s by default)
        with pytest.raises(OSError) as info:
            libos.clone(lambda: None)
        assert info.value.errno == errno.ENOMEM
        assert isinstance(info.value.__cause__, PalError)


def _limit_for_free_fds(free: int) -> int:
    """The RLIMIT_NOFILE under which only ``free`` more descriptors can be opened."""
    used, n = open_fds(), 0
    while free:
        free -= n not in used
        n += 1
    return n


def test_emfile_keeps_the_pal_error_as_its_cause() -> None:
    """A real RLIMIT_NOFILE: the clone that finds no descriptor says so, with its cause."""
    with open_host("sgx") as host, LibOS(host) as libos:
        go = threading.Event()
        live = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (_limit_for_free_fds(16), hard))
        try:
            with pytest.raises(OSError) as info:
                for _ in range(64):
                    live.append(libos.clone(go.wait, BOUND))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            go.set()
            for t in live:
                t.join(BOUND)
        assert info.value.errno == errno.EMFILE
        assert isinstance(info.value.__cause__, PalError)


def test_used_after_shutdown_is_one_exception_from_every_layer() -> None:
    """``ShutDownError``, a ``PalError`` (BADHANDLE) and a ``RuntimeError``, whichever
    public API is used after its shutdown."""
    host = open_host("sgx")
    libos = LibOS(host, "raw")
    libos.shutdown()
    host.shutdown()
    attempts: list[Callable[[], object]] = [
        lambda: host.stream_open("eventfd:"),
        lambda: host.create_pipe(raw=True),
        lambda: host.thread_create(lambda: None),
        host.edge_watch_open,
        lambda: LibOS(host),
        lambda: libos.clone(lambda: None),
        libos.epoll,
        lambda: libos.install_async_event(0.0, lambda: None),
        lambda: install(libos),
    ]
    for attempt in attempts:
        with pytest.raises(ShutDownError, match=r"shut down|stopped") as caught:
            attempt()
        assert isinstance(caught.value, RuntimeError)
        assert isinstance(caught.value, PalError)
        assert caught.value.code is PalErrorCode.BADHANDLE
