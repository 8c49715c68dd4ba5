"""Defect 5: a handshake has one deadline for the whole handshake, not one per recv.

The host (or a peer it lets in) sends a TLS record header announcing a long record, then
its body one byte at a time.  Before, every byte restarted the per-recv timeout: the
IPC worker and a ``clone`` on sgx/pipe were held for as long as the host kept dribbling.
"""

from __future__ import annotations

import threading
import time

import pytest

from libos_support import BOUND, booted, wait_until
from pylibos.libos import ECHO

from .hostile import HostileHost, abstract_name

DEADLINE = 0.5
EVERY = 0.1


def test_dribbling_peer_holds_the_ipc_worker_only_until_the_deadline(
    hostile: HostileHost,
) -> None:
    with booted("sgx", "raw") as libos:
        libos.host.handshake_timeout = DEADLINE
        worker = libos.ipc_worker
        accepts = libos.host.calls["accept"]
        conn = hostile.connect(abstract_name(libos.host.instance, worker.name, raw=False))
        hostile.do("dribble", conn, EVERY)
        started = time.monotonic()
        assert wait_until(lambda: libos.host.calls["accept"] > accepts)
        assert wait_until(lambda: worker.rejected >= 1), "the dribbler still holds the worker"
        held = time.monotonic() - started
        assert held < DEADLINE + 2.0, f"held {held:.2f} s by a peer dribbling every {EVERY} s"
        libos.host.handshake_timeout = 10.0
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"served", timeout=BOUND) == b"served"


def test_dribbling_peer_in_front_of_clone_fails_it_within_the_deadline(
    hostile: HostileHost,
) -> None:
    """sgx/pipe: the host connects to a new event's listener just before the LibOS's own
    end (a race it can run, since listeners are visible in /proc/net/unix), so the
    accepting end handshakes with the host, which dribbles.  The clone fails cleanly within
    the deadline; the next clone works."""
    with booted("sgx", "pipe") as libos:
        host = libos.host
        real_open = host.stream_open
        raced: list[str] = []

        def open_after_the_host(uri: str, *, nonblocking: bool = False) -> object:
            prefix, _, name = uri.partition(":")
            if prefix == "pipe" and not raced:
                raced.append(name)
                conn = hostile.connect(abstract_name(host.instance, name, raw=False))
                hostile.do("dribble", conn, EVERY)
            return real_open(uri, nonblocking=nonblocking)

        host.handshake_timeout = DEADLINE
        host.stream_open = open_after_the_host  # type: ignore[method-assign,assignment]
        try:
            handles = set(host.open_handles())
            started = time.monotonic()
            with pytest.raises(OSError) as info:
                libos.clone(lambda: None)
            took = time.monotonic() - started
        finally:
            del host.stream_open
        assert raced, "the race was not run"
        assert took < DEADLINE + 2.0, f"clone held {took:.2f} s"
        assert "handshake" in str(info.value) or "TIMEDOUT" in str(info.value)
        assert set(host.open_handles()) == handles, "the failed clone left handles"
        host.handshake_timeout = 10.0
        t = libos.clone(lambda: None)
        assert t.join(BOUND)


def test_shutdown_is_not_held_by_an_adoption_the_host_stalls(hostile: HostileHost) -> None:
    """sgx/pipe: a thread the LibOS did not create uses it, and the host races in front of
    its new event's listener and dribbles the handshake.  Shutdown still ends within its
    own timeout, not the handshake's, and the adoption that finishes after it is undone."""
    stall = 2.0
    timeout = 0.3
    with booted("sgx", "pipe") as libos:
        host = libos.host
        real_open = host.stream_open
        raced: list[str] = []
        outcome: list[BaseException | None] = []

        def open_after_the_host(uri: str, *, nonblocking: bool = False) -> object:
            prefix, _, name = uri.partition(":")
            if prefix == "pipe" and not raced:
                conn = hostile.connect(abstract_name(host.instance, name, raw=False))
                hostile.do("dribble", conn, EVERY)
                raced.append(name)
            return real_open(uri, nonblocking=nonblocking)

        def foreign() -> None:
            try:
                libos.current_thread()
                outcome.append(None)
            except BaseException as exc:  # the adoption fails: its event never came
                outcome.append(exc)

        host.handshake_timeout = stall
        host.stream_open = open_after_the_host  # type: ignore[method-assign,assignment]
        thread = threading.Thread(target=foreign)
        try:
            thread.start()
            assert wait_until(lambda: bool(raced)), "the race was not run"
            started = time.monotonic()
            libos.shutdown(timeout)
            took = time.monotonic() - started
        finally:
            del host.stream_open
            thread.join(BOUND)
        assert not thread.is_alive()
        assert took < timeout + 1.0, f"shutdown({timeout}) took {took:.2f} s"
        assert len(outcome) == 1 and outcome[0] is not None, outcome
        assert libos.threads() == [], "an adoption outlived the shutdown"
