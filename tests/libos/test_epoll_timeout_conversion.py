"""``poll``'s timeout converted as ``select.epoll.poll`` converts it, value by value: with a
writable socket registered, each timeout gives the same result (or the same exception
type and message) on a ``select.epoll`` and on a LibOS epoll; and a timeout that rounds
to a negative millisecond count waits, on the LibOS, until something is ready."""

from __future__ import annotations

import decimal
import fractions
import select
import socket
import threading

import pytest

from libos_support import BOUND, booted


class Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:  # a stable test id
        return f"Index({self.value})"


TIMEOUTS: list[object] = [
    -1e-9, -0.0009, -0.0001, 0.0005, 1e-12, 2, True, Index(0), Index(2**62),
    2_147_483.647, 2_147_483.648, -2_147_483.648, -2_147_483.649, 2**31, 2**70, 9.3e9,
    float("inf"), float("-inf"), float("nan"), "0", b"0", 1j, decimal.Decimal(0),
    fractions.Fraction(1, 2), [],
]  # fmt: skip


def outcome(ep: object, timeout: object) -> tuple[str, str]:
    try:
        got = ep.poll(timeout)  # type: ignore[attr-defined]
    except OverflowError:  # its wording differs between CPython versions
        return ("OverflowError", "")
    except Exception as exc:  # the outcome is what is compared
        return (type(exc).__name__, str(exc))
    return ("ok", repr([events for _fd, events in got]))


@pytest.mark.parametrize("timeout", TIMEOUTS, ids=repr)
def test_each_timeout_as_select_epoll(timeout: object) -> None:
    a, b = socket.socketpair()
    with a, b, booted("sgx", "raw") as libos:
        got = []
        for make in (select.epoll, libos.epoll):
            ep = make()
            try:
                ep.register(a, select.EPOLLOUT)
                got.append(outcome(ep, timeout))
            finally:
                ep.close()
    assert got[1] == got[0]


@pytest.mark.parametrize("timeout", [-0.001, -1, -2_147_483.648])
def test_a_negative_millisecond_count_waits_until_ready(timeout: float) -> None:
    a, b = socket.socketpair()
    with a, b, booted("sgx", "raw") as libos:
        ep = libos.epoll()
        try:
            ep.register(a, select.EPOLLIN)
            got: list[list[tuple[int, int]]] = []
            waiter = threading.Thread(target=lambda: got.append(ep.poll(timeout)))
            waiter.start()
            waiter.join(0.2)
            still_waiting = waiter.is_alive()
            b.send(b"x")
            waiter.join(BOUND)
            assert not waiter.is_alive()
            assert got == [[(a.fileno(), select.EPOLLIN)]]
        finally:
            ep.close()
    assert still_waiting
