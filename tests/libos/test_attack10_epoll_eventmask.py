"""Event masks: ``select.epoll`` passes the mask to ``epoll_ctl``, which refuses the ones
Linux refuses (``EINVAL``) and reports every readiness bit the file has that the mask
asks for.  Each case runs on a ``select.epoll`` and on a LibOS epoll and expects the
same outcome."""

from __future__ import annotations

import contextlib
import functools
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from libos_support import booted

IN, OUT = select.EPOLLIN, select.EPOLLOUT
EXCLUSIVE, ONESHOT = select.EPOLLEXCLUSIVE, select.EPOLLONESHOT
RDBAND, WRBAND = select.EPOLLRDBAND, select.EPOLLWRBAND


def outcome(call: Callable[[], object]) -> tuple[str, int | None, object]:
    """What a call did: ("ok", None, its result), or the exception's type and errno."""
    try:
        return ("ok", None, call())
    except Exception as exc:  # the outcome is what is compared
        return (type(exc).__name__, getattr(exc, "errno", None), None)


@pytest.fixture
def both() -> Iterator[tuple[Callable[[], Any], Callable[[], Any]]]:
    """Makes epolls natively and on a LibOS (sgx/raw); all closed at the end."""
    made: list[Any] = []
    with contextlib.ExitStack() as stack:
        libos = stack.enter_context(booted("sgx", "raw"))

        def native() -> Any:
            made.append(select.epoll())
            return made[-1]

        def libos_epoll() -> Any:
            made.append(libos.epoll())
            return made[-1]

        yield native, libos_epoll
        for ep in made:
            ep.close()


def on_each(
    both: tuple[Callable[[], Any], Callable[[], Any]], act: Callable[[Any, socket.socket], object]
) -> list[object]:
    """``act(ep, a)`` on a new native epoll, then on a new LibOS epoll, ``a`` being one end
    of a socket pair made for the call: what each returned."""
    a, b = socket.socketpair()
    with a, b:
        return [act(make(), a) for make in both]


@contextlib.contextmanager
def registered_on_each(
    both: tuple[Callable[[], Any], Callable[[], Any]], mask: int
) -> Iterator[tuple[list[Any], socket.socket, socket.socket]]:
    """A new native epoll and a new LibOS epoll, each with ``a`` (one end of a socket pair
    ``a, b`` made for the block, closed after it) registered for ``mask``."""
    a, b = socket.socketpair()
    with a, b:
        eps = [make() for make in both]
        for ep in eps:
            ep.register(a, mask)
        yield eps, a, b


def _all_bits(ep: Any, a: socket.socket) -> None:
    ep.register(a, -1)  # 0xffffffff: EPOLLEXCLUSIVE with every other bit


def _exclusive_oneshot(ep: Any, a: socket.socket) -> None:
    ep.register(a, IN | EXCLUSIVE | ONESHOT)


def _modify_an_exclusive_entry(ep: Any, a: socket.socket) -> None:
    ep.register(a, IN | EXCLUSIVE)
    ep.modify(a, IN)


def _modify_adding_exclusive(ep: Any, a: socket.socket) -> None:
    ep.register(a, IN)
    ep.modify(a, IN | EXCLUSIVE)


def _itself(ep: Any, a: socket.socket) -> None:
    ep.register(ep.fileno(), IN)


@pytest.mark.parametrize(
    "sequence",
    [_all_bits, _exclusive_oneshot, _modify_an_exclusive_entry, _modify_adding_exclusive, _itself],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_mask_linux_refuses_is_einval(
    both: tuple[Callable[[], Any], Callable[[], Any]],
    sequence: Callable[[Any, socket.socket], None],
) -> None:
    # Natively every one of these is OSError(EINVAL) from epoll_ctl: EPOLLEXCLUSIVE
    # with EPOLLONESHOT (or with the other bits -1 carries), EPOLL_CTL_MOD of an entry
    # made with EPOLLEXCLUSIVE or adding it, and an epoll put into itself.  The LibOS's
    # register/modify never look at the mask (EpollInstance.register/modify in
    # libos/_interest.py store any int; Entry in _epoll_events.py), so each is
    # accepted and a program's error path is never taken.
    got = on_each(both, lambda ep, a: outcome(functools.partial(sequence, ep, a))[:2])
    assert got[0] == ("OSError", 22)
    assert got[1] == got[0]


def test_band_bits_are_not_reported_a_documented_difference(
    both: tuple[Callable[[], Any], Callable[[], Any]],
) -> None:
    # A documented difference (docs/epoll.md).  A writable UNIX socket asked for
    # EPOLLWRBAND only is reported natively with EPOLLWRBAND set: [(fd, 512)].  The PAL's
    # wait flags carry read, write, urgent data, peer hang-up, error and hang-up, no band
    # bits, so the LibOS cannot ask the host for them: such an entry is never reported
    # (EPOLLRDNORM and EPOLLWRNORM are, with EPOLLIN and EPOLLOUT).

    def reported(ep: Any, a: socket.socket) -> list[int]:
        ep.register(a, WRBAND)
        return [events for _fd, events in ep.poll(0)]

    results = on_each(both, reported)
    assert results == [[WRBAND], []]
    doc = (Path(__file__).parents[2] / "docs" / "epoll.md").read_text()
    assert "`EPOLLRDBAND`, `EPOLLWRBAND` and `EPOLLMSG`" in doc


@pytest.mark.parametrize("bit", [1 << i for i in range(32)], ids=hex)
def test_each_bit_with_exclusive_as_linux(
    both: tuple[Callable[[], Any], Callable[[], Any]], bit: int
) -> None:
    # EPOLLEXCLUSIVE with one other bit: Linux allows IN, OUT, ERR, HUP, WAKEUP and ET.
    got = on_each(
        both, lambda ep, a: outcome(functools.partial(ep.register, a, bit | EXCLUSIVE))[:2]
    )
    assert got[1] == got[0]


@pytest.mark.parametrize("op", ["modify", "unregister"])
def test_the_epoll_itself_is_einval_for_every_operation(
    both: tuple[Callable[[], Any], Callable[[], Any]], op: str
) -> None:
    native, libos_epoll = both
    got = []
    for make in (native, libos_epoll):
        ep = make()
        args = (ep.fileno(), IN) if op == "modify" else (ep.fileno(),)
        got.append(outcome(functools.partial(getattr(ep, op), *args))[:2])
    assert got[0] == ("OSError", 22)
    assert got[1] == got[0]


def test_an_exclusive_entry_is_reported_and_unregistered(
    both: tuple[Callable[[], Any], Callable[[], Any]],
) -> None:
    with registered_on_each(both, OUT | EXCLUSIVE) as (eps, a, _b):
        assert [ep.poll(0) for ep in eps] == [[(a.fileno(), OUT)]] * 2
        for ep in eps:
            ep.unregister(a)
        assert [ep.poll(0) for ep in eps] == [[], []]


def test_mask_zero_still_reports_errors_and_hang_ups(
    both: tuple[Callable[[], Any], Callable[[], Any]],
) -> None:
    # HOLDS: an entry registered with mask 0 gets EPOLLERR/EPOLLHUP only, as natively.
    with registered_on_each(both, 0) as (eps, _a, b):
        assert [ep.poll(0) for ep in eps] == [[], []]
        b.close()
        assert [[ev for _fd, ev in ep.poll(0)] for ep in eps] == [[select.EPOLLHUP]] * 2
