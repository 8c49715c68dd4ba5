"""Pollable events: binary-semaphore semantics, coalescing, no lost wakeups, and a host
that forges wakeups."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from libos_support import (
    BOUND,
    CONFIG_IDS,
    CONFIGS,
    INJECTABLE,
    INJECTABLE_IDS,
    booted,
    inject,
    readable,
    wait_until,
)
from pylibos.libos import LibOS, PollableEvent


@pytest.fixture
def event(libos: LibOS) -> Iterator[PollableEvent]:
    ev = libos.create_pollable_event()
    yield ev
    ev.destroy()


# -- semantics -------------------------------------------------------------------------


def test_binary_semaphore(libos: LibOS, event: PollableEvent) -> None:
    host = libos.host
    assert not event.is_set() and not readable(host, event)
    event.set()
    event.set()
    assert event.is_set() and readable(host, event)
    event.clear()
    assert not event.is_set() and not readable(host, event)
    event.clear()
    assert not event.is_set() and not readable(host, event)
    event.set()
    assert event.wait(0) and event.wait(BOUND)  # waiting does not consume
    assert event.is_set()
    assert repr(event) == f"<PollableEvent {libos.events} set>"


def test_set_on_a_set_event_makes_no_host_call(libos: LibOS, event: PollableEvent) -> None:
    host = libos.host
    event.set()
    before = host.calls_total
    for _ in range(100):
        event.set()
    assert host.calls_total == before


def test_clear_on_a_clear_event_makes_no_host_call(libos: LibOS, event: PollableEvent) -> None:
    host = libos.host
    before = host.thread_calls()
    for _ in range(100):
        event.clear()
    assert host.thread_calls() == before


def test_set_and_clear_each_cost_one_host_call(libos: LibOS, event: PollableEvent) -> None:
    host = libos.host
    if libos.events == "pipe" and host.kind == "sgx":
        event.set()  # the first TLS write waits for the handshake; count from the second
        event.clear()
    # This thread's calls: the workers' periodic rechecks are theirs.
    before = host.thread_calls()
    event.set()
    assert host.thread_calls() == before + 1
    event.clear()
    assert host.thread_calls() == before + 2


def test_wait_times_out(libos: LibOS, event: PollableEvent) -> None:
    t0 = time.monotonic()
    assert event.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.05
    assert event.wait(0) is False


def test_wait_returns_when_set_from_another_thread(libos: LibOS, event: PollableEvent) -> None:
    result: list[bool] = []

    def waiter() -> None:
        result.append(event.wait(BOUND))

    t = libos.clone(waiter)
    # Not needed for the outcome: gives the waiter time to be asleep in the host first.
    wait_until(lambda: libos.host.calls["poll"] > 0, 1.0)
    event.set()
    assert t.join(BOUND)
    assert result == [True]


def test_wait_without_timeout(libos: LibOS, event: PollableEvent) -> None:
    result: list[bool] = []
    t = libos.clone(lambda: result.append(event.wait()))
    event.set()
    assert t.join(BOUND)
    assert result == [True]


def test_destroy_is_idempotent_and_set_after_destroy_is_ignored(libos: LibOS) -> None:
    ev = libos.create_pollable_event()
    handles = {ev.read_handle, ev._write}
    ev.destroy()
    ev.destroy()
    assert ev.closed
    assert not handles & set(libos.host.open_handles())
    ev.set()
    assert not ev.is_set()


# -- the state machine ----------------------------------------------------------------


class EventMachine(RuleBasedStateMachine):
    """One event against a bool; ``recycle`` hands it back to the factory (into the pool,
    when the LibOS pools) and takes the next one, which must be clear."""

    libos: ClassVar[LibOS]

    def __init__(self) -> None:
        super().__init__()
        self.event = self.libos.create_pollable_event()
        self.model = False

    @rule()
    def set(self) -> None:
        self.event.set()
        self.model = True

    @rule()
    def clear(self) -> None:
        self.event.clear()
        self.model = False

    @rule()
    def wait0(self) -> None:
        assert self.event.wait(0) is self.model

    @rule()
    def is_set(self) -> None:
        assert self.event.is_set() is self.model

    @rule()
    def recycle(self) -> None:
        factory = self.libos._factory
        pooled = factory.pooled
        old = self.event
        factory.release(old)
        if factory.pool:
            assert factory.pooled == pooled + 1 and not old.closed
        else:
            assert old.closed
        self.event = self.libos.create_pollable_event()
        assert (self.event is old) is factory.pool
        self.model = False

    @invariant()
    def host_agrees(self) -> None:
        assert readable(self.libos.host, self.event) is self.model

    def teardown(self) -> None:
        self.libos._factory.release(self.event)


@pytest.mark.parametrize(("kind", "events"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("pool", [False, True], ids=["", "pool"])
def test_event_state_machine(kind: str, events: str, pool: bool) -> None:
    with booted(kind, events, pool=pool) as libos:
        machine = type("Machine", (EventMachine,), {"libos": libos})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=30,
                stateful_step_count=20,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


# -- no lost wakeups -------------------------------------------------------------------


def test_ping_pong_loses_no_wakeup(libos: LibOS) -> None:
    """Two threads hand a token back and forth; any lost wakeup stalls the game.  Each
    round crosses the set/wait race twice, so 3,000 rounds try it 6,000 times."""
    rounds = 3_000
    ping, pong = libos.create_pollable_event(), libos.create_pollable_event()
    partner_rounds: list[int] = []

    def partner() -> None:
        done = 0
        for _ in range(rounds):
            if not ping.wait(BOUND):
                break
            ping.clear()
            pong.set()
            done += 1
        partner_rounds.append(done)

    try:
        t = libos.clone(partner)
        for i in range(rounds):
            ping.set()
            assert pong.wait(BOUND), f"wakeup lost in round {i}"
            pong.clear()
        assert t.join(BOUND)
        assert partner_rounds == [rounds]
    finally:
        ping.destroy()
        pong.destroy()


# -- a host that forges wakeups --------------------------------------------------------


def test_forged_wakeup_does_not_end_a_wait(injectable_libos: LibOS) -> None:
    libos = injectable_libos
    event = libos.create_pollable_event()
    try:
        inject(event, 100)
        assert readable(libos.host, event)
        t0 = time.monotonic()
        assert event.wait(0.1) is False
        assert time.monotonic() - t0 >= 0.1
        assert not readable(libos.host, event), "the forged bytes were not drained"
        assert not event.is_set()
        # A real set still works, and its clear leaves the channel empty.
        inject(event, 3)
        event.set()
        assert event.wait(0)
        event.clear()
        assert not event.wait(0)
    finally:
        event.destroy()


def test_forged_wakeups_while_a_thread_waits(injectable_libos: LibOS) -> None:
    """Each forged wakeup wakes the waiter, which drains the channel (the only one who
    does) and sleeps again; it returns only for the real set."""
    libos = injectable_libos
    event = libos.create_pollable_event()
    really_set = threading.Event()
    seen: list[bool] = []

    def waiter() -> None:
        ok = event.wait(BOUND)
        seen.append(ok and really_set.is_set())

    try:
        t = libos.clone(waiter)
        for _ in range(5):
            inject(event, 7)
            assert wait_until(lambda: not readable(libos.host, event)), "waiter did not drain"
            assert not seen, "the waiter returned on a forged wakeup"
        really_set.set()
        event.set()
        assert t.join(BOUND)
        assert seen == [True]
    finally:
        event.destroy()


def test_forged_bytes_on_a_tls_pipe_get_the_event_a_new_channel() -> None:
    """On sgx a pipe event is a TLS channel: bytes the host forges are not a record and
    kill the session for good.  The event neither reports itself set nor dies: it gets a
    new channel, and works on."""
    with booted("sgx", "pipe") as libos:
        event = libos.create_pollable_event()
        try:
            event.set()  # let the handshake finish
            event.clear()
            broken = event.read_handle
            assert event._write._sock is not None
            event._write._sock.sendall(b"\x17\x03\x03\x00\x05hello")
            assert not event.wait(0.2)
            assert event.rebuilt == 1 and event.read_handle is not broken
            assert broken.closed
            setter = threading.Thread(target=event.set)
            setter.start()
            assert event.wait(BOUND)
            setter.join(BOUND)
            event.clear()
            assert not event.wait(0.05)
        finally:
            event.destroy()


PIPES = [(kind, events) for kind, events in CONFIGS if events != "eventfd"]


@pytest.mark.parametrize(("kind", "events"), PIPES, ids=[f"{k}/{e}" for k, e in PIPES])
def test_a_cut_channel_is_replaced_not_spun_on(kind: str, events: str) -> None:
    """A host that closes the far end of a pipe leaves the read end readable for ever;
    the event replaces the channel instead of waking again and again."""
    with booted(kind, events) as libos:
        event = libos.create_pollable_event()
        try:
            assert event._write._sock is not None
            event._write._sock.shutdown(socket.SHUT_RDWR)  # the host cuts the pipe
            assert not event.wait(0.2)
            assert event.rebuilt == 1
            event.set()
            assert event.wait(BOUND)
        finally:
            event.destroy()


@pytest.mark.parametrize(("kind", "events"), INJECTABLE, ids=INJECTABLE_IDS)
def test_pooled_event_carries_no_earlier_wakeup(kind: str, events: str) -> None:
    """A reused event is clear.  Bytes the host forged stay in the channel (draining them
    on every release would cost a host call per clone), but they wake nobody for good."""
    with booted(kind, events, pool=True) as libos:
        factory = libos._factory
        ev = libos.create_pollable_event()
        # Set by its last user, and forged wakeups on top.
        ev.set()
        inject(ev, 100)
        factory.release(ev)
        again = libos.create_pollable_event()
        assert again is ev and not again.is_set()
        assert again.wait(0.02) is False
        assert not readable(libos.host, again), "the wait drained the forged bytes"
        # Clear, with forged wakeups only.
        inject(again, 5)
        factory.release(again)
        third = libos.create_pollable_event()
        assert third is ev and not third.is_set()
        assert third.wait(0.02) is False
        # A stale holder sets it after it went back to the pool.
        factory.release(third)
        third.set()
        fourth = libos.create_pollable_event()
        assert fourth is ev and not fourth.is_set() and not readable(libos.host, fourth)
        assert fourth.wait(0.02) is False
        factory.release(fourth)


def test_reusing_a_pooled_event_costs_no_host_call() -> None:
    with booted("sgx", "raw", pool=True) as libos:
        ev = libos.create_pollable_event()
        ev.set()
        ev.clear()
        calls = libos.host.calls_total
        libos._factory.release(ev)
        assert libos.create_pollable_event() is ev
        assert libos.host.calls_total == calls
        libos._factory.release(ev)


@pytest.mark.parametrize(("kind", "events"), INJECTABLE, ids=INJECTABLE_IDS)
def test_next_thread_gets_a_clear_event(kind: str, events: str) -> None:
    with booted(kind, events, pool=True) as libos:
        go = threading.Event()
        first = libos.clone(go.wait, BOUND)
        inject(first.event, 9)
        first.event.set()
        go.set()
        assert first.join(BOUND)
        assert libos._factory.pooled == 1
        seen: list[tuple[bool, bool]] = []

        def look() -> None:
            ev = libos.current_thread().event
            seen.append((ev.is_set(), ev.wait(0.02)))

        second = libos.clone(look)
        assert second.join(BOUND)
        assert second.event is first.event
        assert seen == [(False, False)]


@pytest.mark.parametrize("events", ["pipe", "raw"])
def test_two_libos_on_one_host_name_their_pipes_apart(events: str) -> None:
    """Each factory names its pipes on its own, so two of them on one host never try to
    listen on the same name at the same time."""
    with booted("sgx", events) as first:
        second = LibOS(first.host, events, ipc_name="second")
        made = [first.create_pollable_event(), second.create_pollable_event()]
        try:
            every = [first.main_thread.event, second.main_thread.event, *made]
            assert len({ev.read_handle.uri for ev in every}) == 4
        finally:
            for ev in made:
                ev.destroy()
            second.shutdown()


def test_release_after_factory_close_destroys() -> None:
    with booted("direct", "raw", pool=True) as libos:
        ev = libos.create_pollable_event()
        libos._factory.close()
        libos._factory.release(ev)
        assert ev.closed and libos._factory.pooled == 0
