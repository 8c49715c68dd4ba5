"""Hostile review: an epoll's close is a marked critical section (a Ctrl-C in it waits for
its end).  It must hold no wait that a hostile host can stretch.

``EpollInstance.close`` wakes the epoll's waiters from inside its section: a ``set`` of
each waiter's event, which takes that event's lock.  Another thread may hold the lock for
as long as the host likes: a ``set`` that finds the channel broken rebuilds it under the
lock, and on sgx/pipe the new channel's handshake can be stalled by the host up to
``handshake_timeout`` (10 s by default).  The Ctrl-C then waits for another thread's
rebuild."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from adversary.hostile import HostileHost, abstract_name
from libos_support import BOUND, booted, interrupted, wait_until
from pylibos.libos import _interest
from pylibos.pal import _interrupts

STALL = 3.0  # the host stalls the rebuild's handshake this long (its handshake_timeout)
_CLOSE = _interest.EpollInstance.close.__code__


def _line_of(code: Any, text: str) -> int:
    lines, first = inspect.getsourcelines(code)
    (n,) = [first + i for i, line in enumerate(lines) if line.strip() == text]
    return n


def test_a_ctrl_c_in_an_epoll_close_waits_for_no_other_threads_rebuild() -> None:
    """A LibOS thread polls an epoll; the host closes the PAL's write end of its event
    and stalls the handshake of the next pipe; another thread sets that event (it finds
    the channel broken and rebuilds it, holding the event's lock through the stalled
    handshake; the waiter, woken by the cut, may be the one that rebuilds).  The main
    thread closes the epoll and a Ctrl-C lands in the close's section, before it wakes
    the waiters: the KeyboardInterrupt must come at the section's end, while the rebuild
    is still stalled.  Before the fix: the section waits on the event's lock until the handshake
    times out (``STALL`` s; 10 s at the default ``handshake_timeout``), and only then
    raises the KeyboardInterrupt."""
    with HostileHost() as hostile, booted("sgx", "pipe") as libos:
        host = libos.host
        ep = libos.epoll()
        inst = ep._inst
        assert inst is not None
        failures: list[BaseException] = []  # rebuilds that timed out (the host's stall)

        def poll() -> None:
            try:
                ep.poll(BOUND)
            except OSError as exc:  # its own rebuild of the cut channel timed out
                failures.append(exc)

        waiter = libos.clone(poll)
        assert wait_until(lambda: len(inst.waiters) == 1), "the waiter never polled"
        (event,) = inst.waiters
        real_open = host.stream_open
        raced: list[str] = []

        def open_after_the_host(uri: str, *, nonblocking: bool = False) -> object:
            prefix, _, name = uri.partition(":")
            if prefix == "pipe" and not raced:
                raced.append(name)
                conn = hostile.connect(abstract_name(host.instance, name, raw=False))
                hostile.do("dribble", conn, 0.1)
            return real_open(uri, nonblocking=nonblocking)

        def set_it() -> None:
            try:
                event.set()
            except OSError as exc:  # the stalled handshake timed out: no new channel
                failures.append(exc)

        host.handshake_timeout = STALL
        host.stream_open = open_after_the_host  # type: ignore[method-assign,assignment]
        setter = threading.Thread(target=set_it)
        try:
            os.close(event._write._fd)  # the host closes the PAL's write end
            setter.start()
            assert wait_until(lambda: bool(raced)), "the rebuild never opened a pipe"
            assert event._lock.locked(), "the rebuild does not hold the event's lock"
            wake_line = _line_of(_CLOSE, "for event in waiters:")

            def local(frame: FrameType, what: str, arg: Any) -> Any:
                if what == "line" and frame.f_lineno == wake_line:
                    _interrupts._on_sigint(signal.SIGINT, frame)  # a Ctrl-C, deferred
                return local

            def tracer(frame: FrameType, what: str, arg: Any) -> Any:
                return local if frame.f_code is _CLOSE else None

            started = time.monotonic()
            came = interrupted(ep.close, tracer)
            took = time.monotonic() - started
            timed_out = list(failures)
        finally:
            setter.join(STALL + BOUND)
            del host.stream_open
            host.handshake_timeout = 10.0
            assert waiter.join(BOUND)
        assert came, "no KeyboardInterrupt came out of the close"
        assert not timed_out, (
            f"the Ctrl-C in the epoll's close came {took:.2f} s late, after another "
            f"thread's rebuild the host stalled had timed out: {timed_out}"
        )
