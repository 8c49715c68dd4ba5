"""A close that took its handle from the host (``set.remove``) just before ``shutdown``
took the others, and that runs on while ``shutdown`` ends: the descriptor is still this
close's to close, so shutdown leaves the eventfd registry (against which the close checks
it) to the last close under way, and the close neither leaks it nor fails."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal._identity import EventfdRegistry

from ._pal_support import is_open


def _setup(kind: str) -> tuple[pal.Host, pal.Handle, EventfdRegistry]:
    host = pal.open_host(kind)
    handle = host.stream_open("eventfd:", nonblocking=True)
    registry = handle._ident
    if not isinstance(registry, EventfdRegistry):
        host.shutdown()
        pytest.skip("kcmp is not to be had here")
    return host, handle, registry


def _close_as_thread_b(host: pal.Host, handle: pal.Handle, number: int) -> tuple[str, bool]:
    """Close ``handle`` as thread B (the test's hook runs the shutdown in the middle of
    it), then shut the host down: how the close ended, and whether eventfd ``number`` was
    left open (closed here if so)."""
    try:
        host.close(handle)
        outcome = "returned"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        host.shutdown()
    leaked = is_open(number)
    if leaked:
        os.close(number)
    return outcome, leaked


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_shutdown_between_a_closes_take_and_its_check_leaks_no_eventfd(
    kind: str,
) -> None:
    """Thread B's close has taken the handle; the main thread's shutdown runs to its
    end before B's kcmp.  Were the registry closed, the kcmp would name a closed epoll,
    the check would say "the host closed it", and B would let the number go unclosed."""
    host, handle, registry = _setup(kind)
    number = handle._fd
    real: Callable[..., int] = registry._kcmp_epoll_tfd

    def kcmp_after_shutdown(*args: Any) -> int:
        host.shutdown()
        return real(*args)

    registry._kcmp_epoll_tfd = kcmp_after_shutdown  # type: ignore[assignment]
    outcome, leaked = _close_as_thread_b(host, handle, number)
    assert not leaked, f"close racing shutdown left eventfd {number} open ({outcome})"


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_shutdown_between_a_closes_check_and_its_unregister_leaks_no_eventfd(
    kind: str,
) -> None:
    """As above, with shutdown done between B's check and its unregister: ``unregister``
    on a closed registry would raise ``ValueError`` (no ``OSError``, which the gate maps)
    before the descriptor is closed; the close returns and the descriptor is closed."""
    host, handle, registry = _setup(kind)
    number = handle._fd
    real_gate: Callable[..., Any] = registry._gate
    fired: list[bool] = []

    def gate(syscall: str, where: str, fn: Callable[..., Any], *args: Any) -> Any:
        if syscall == "epoll_ctl" and not fired:
            fired.append(True)
            host.shutdown()
        return real_gate(syscall, where, fn, *args)

    registry._gate = gate
    outcome, leaked = _close_as_thread_b(host, handle, number)
    assert outcome == "returned" and not leaked, (
        f"close racing shutdown: {outcome}; eventfd {number} left open: {leaked}"
    )
