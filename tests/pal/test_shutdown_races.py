"""Shutdown at the worst moment for a thread start, and a host that refuses the eventfd
registry an epoll watch."""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal._identity import EventfdRegistry

from ._pal_support import KINDS, WAIT_S


@pytest.mark.parametrize("kind", KINDS)
def test_thread_start_racing_shutdown_starts_no_thread(
    kind: str,
) -> None:
    """Thread B is in ``thread_create`` past its ``closed`` test when the main thread
    runs ``shutdown`` (here: at the slot take, B's next step).  Were B to record and
    start its thread after shutdown listed the threads it joins, the thread would run on,
    unjoined: B gets ``ShutDownError``, and its slot back."""
    host = pal.open_host(kind)
    go = threading.Event()
    try:
        real_take = host._take_slot
        ran: list[str] = []

        def take_during_shutdown() -> object:
            host.shutdown(timeout=WAIT_S)
            return real_take()

        host._take_slot = take_during_shutdown

        def work() -> None:
            ran.append("ran")
            go.wait(WAIT_S)

        try:
            thread: pal.PalThread | None = host.thread_create(work)
        except pal.PalError:
            thread = None
        finally:
            host._take_slot = real_take
        running = thread is not None and thread.is_alive()
        go.set()
        if thread is not None:
            assert thread.join(WAIT_S)
        assert thread is None, (
            f"thread_create racing shutdown started {thread} on a shut-down host "
            f"(running after shutdown returned: {running}; it ran: {ran})"
        )
    finally:
        go.set()
        host.shutdown()


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False  # listdir's own descriptor, closed since
    return True


@pytest.mark.parametrize("kind", KINDS)
def test_refused_registry_watch_leaks_no_eventfd_and_no_claim(kind: str) -> None:
    """The host's kernel refuses the registry's epoll_ctl (ENOSPC: max_user_watches
    reached, a limit any process of the user can exhaust).  The open fails, as it should,
    but the eventfd it made is still ours and must be closed, and its number must not
    stay claimed in the registry."""
    with pal.open_host(kind) as host:
        host.close(host.stream_open("eventfd:"))  # the registry exists
        registry = host._eventfds
        if not isinstance(registry, EventfdRegistry):
            pytest.skip("kcmp is not to be had here")
        real_epoll = registry._epoll

        class Refusing:
            def register(self, fd: int, mask: int = 0) -> None:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name: str) -> Any:
                return getattr(real_epoll, name)

        registry._epoll = Refusing()  # type: ignore[assignment]
        before = {fd for fd in os.listdir("/proc/self/fd") if _open(int(fd))}
        try:
            with pytest.raises(pal.PalError) as failure:
                host.stream_open("eventfd:")
        finally:
            registry._epoll = real_epoll
        after = set(os.listdir("/proc/self/fd"))
        leaked = sorted(fd for fd in map(int, after - before) if _open(fd))
        claimed = dict(registry._holders)
        for fd in leaked:
            os.close(fd)
        assert "No space left" in str(failure.value), str(failure.value)
        assert not leaked, f"a refused registry watch leaked eventfd {leaked}"
        assert not claimed, f"numbers still claimed by failed handles: {claimed}"
