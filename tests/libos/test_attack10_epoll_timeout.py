"""``poll``'s timeout as ``select.epoll`` reads it: seconds rounded *up* to whole
milliseconds (``_PyTime_AsMilliseconds(..., ROUND_CEILING)``), any negative millisecond
count meaning "for ever", a count beyond a C int an ``OverflowError``.

So a timeout just below zero, the usual result of ``deadline - time.monotonic()`` a
moment late, is 0 ms natively: ``poll`` returns at once.  A program that computes its
timeout that way must not hang under the LibOS."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

from libos_support import BOUND, booted


def test_a_timeout_just_below_zero_returns_at_once() -> None:
    # (a hang).  Natively poll(-0.0001) with nothing ready returns [] at once (the
    # timeout rounds up to 0 ms).  The LibOS's _deadline (libos/_epoll.py) turns every
    # negative timeout into None, "wait for ever": the poll below never returns until
    # the epoll is closed under it.  (Likewise -1e-9 and -0.0009.)
    timeout = -0.0001
    native = select.epoll()
    try:
        start = time.monotonic()
        assert native.poll(timeout) == []
        assert time.monotonic() - start < 1.0
    finally:
        native.close()
    with booted("sgx", "raw") as libos:
        ep = libos.epoll()
        got: list[list[tuple[int, int]]] = []
        waiter = threading.Thread(target=lambda: got.append(ep.poll(timeout)))
        waiter.start()
        waiter.join(1.0)  # natively it is back in microseconds
        returned_by_itself = not waiter.is_alive()
        ep.close()  # wakes a waiter still asleep (it returns [])
        waiter.join(BOUND)
        assert not waiter.is_alive()
    assert returned_by_itself, f"poll({timeout}) was still waiting after 1 s"


def test_a_timeout_past_a_c_int_of_milliseconds_is_overflow_error() -> None:
    # Natively poll(1e10) raises OverflowError (the timeout does not fit the
    # platform's time type / a C int of milliseconds), before any wait.  The LibOS takes
    # it as a deadline 317 years away; with a ready descriptor it returns the event
    # (nothing ready: it sleeps).
    a, b = socket.socketpair()
    with a, b:
        native = select.epoll()
        try:
            native.register(a, select.EPOLLOUT)
            with pytest.raises(OverflowError):
                native.poll(1e10)
        finally:
            native.close()
        with booted("sgx", "raw") as libos:
            ep = libos.epoll()
            ep.register(a, select.EPOLLOUT)
            with pytest.raises(OverflowError):
                ep.poll(1e10)


@pytest.mark.parametrize("timeout", [0, 0.0, -0.0, 1e-7])
def test_short_timeouts_agree(timeout: float) -> None:
    # HOLDS: zero, minus zero and a tenth of a microsecond return [] quickly on both.
    with booted("sgx", "raw") as libos:
        for make in (select.epoll, libos.epoll):
            ep = make()
            try:
                assert ep.poll(timeout) == []
            finally:
                ep.close()
