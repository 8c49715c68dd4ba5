"""``poll``'s and ``register``'s arguments converted as ``select.epoll`` converts them
(Argument Clinic: ``maxevents`` a C int, ``timeout`` through ``_PyTime_FromSecondsObject``,
the descriptor before the epoll is checked open).  Each case runs on a ``select.epoll``
and on a LibOS epoll, with one writable socket registered, and expects the same outcome:
the exception's type and errno, or the same number of events."""

from __future__ import annotations

import functools
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from libos_support import booted


class Index:
    """An integer-like object (``operator.index`` works on it), as a numpy integer is."""

    def __index__(self) -> int:
        return 0


def outcome(call: Callable[[], object]) -> tuple[str, int | None, object]:
    try:
        result = call()
    except Exception as exc:  # the outcome is what is compared
        return (type(exc).__name__, getattr(exc, "errno", None), None)
    return ("ok", None, len(result) if isinstance(result, list) else result)


Case = Callable[[Any, socket.socket], object]


@pytest.fixture
def run_on_both() -> Iterator[Callable[[Case], list[tuple[str, int | None, object]]]]:
    with booted("sgx", "raw") as libos:

        def run(case: Case) -> list[tuple[str, int | None, object]]:
            got = []
            for make in (select.epoll, libos.epoll):
                a, b = socket.socketpair()
                ep = make()
                try:
                    ep.register(a, select.EPOLLOUT)
                    got.append(outcome(functools.partial(case, ep, a)))
                finally:
                    ep.close()
                    a.close()
                    b.close()
            return got

        yield run


DIFFERS: dict[str, Case] = {
    # Natively maxevents is a C int: poll(0, 1.5) is TypeError ("'float' object
    # cannot be interpreted as an integer"); the LibOS's Epoll.poll (libos/_epoll.py)
    # compares it with -1 and 0 only and returns the event.
    "maxevents-float": lambda ep, a: ep.poll(0, 1.5),
    # Natively OverflowError ("Python int too large to convert to C int"); the
    # LibOS returns the event.
    "maxevents-too-large": lambda ep, a: ep.poll(0, 2**40),
    # Natively a timeout is any number or an object with __index__ (a numpy
    # integer): poll(Index()) returns the event; the LibOS's _deadline (libos/_epoll.py)
    # accepts only int and float: TypeError "timeout must be an integer or None, got
    # Index".
    "timeout-index": lambda ep, a: ep.poll(Index()),
    # Natively the descriptor argument is converted first: on a closed epoll,
    # register("x") is TypeError and register(-1) is ValueError("file descriptor cannot
    # be a negative integer (-1)"); the LibOS's Epoll.register checks the epoll first:
    # ValueError("I/O operation on closed epoll object") for both.
    "closed-register-not-an-fd": lambda ep, a: (ep.close(), ep.register("x")),
}

AGREES: dict[str, Case] = {
    "maxevents-0": lambda ep, a: ep.poll(0, 0),
    "maxevents-negative": lambda ep, a: ep.poll(0, -5),
    "maxevents-1": lambda ep, a: ep.poll(0, 1),
    "timeout-bool": lambda ep, a: ep.poll(False),
    "timeout-keywords": lambda ep, a: ep.poll(timeout=0, maxevents=1),
    "timeout-nan": lambda ep, a: ep.poll(float("nan")),
    "fd-too-large": lambda ep, a: ep.register(2**40),
    "fd-negative": lambda ep, a: ep.register(-1),
    "fd-by-keyword": lambda ep, a: ep.modify(fd=a.fileno(), eventmask=select.EPOLLIN),
    "closed-poll": lambda ep, a: (ep.close(), ep.poll(0)),
    "closed-fileno": lambda ep, a: (ep.close(), ep.fileno()),
}


@pytest.mark.parametrize("name", list(DIFFERS))
def test_arguments_as_select_epoll(
    run_on_both: Callable[[Case], list[tuple[str, int | None, object]]], name: str
) -> None:
    native, libos = run_on_both(DIFFERS[name])
    assert libos == native


@pytest.mark.parametrize("name", list(AGREES))
def test_arguments_that_already_agree(
    run_on_both: Callable[[Case], list[tuple[str, int | None, object]]], name: str
) -> None:
    # HOLDS.
    native, libos = run_on_both(AGREES[name])
    assert libos == native


@pytest.mark.parametrize(
    "args",
    [(-1, 1), (2**40,), (-1, 2**40)],
    ids=["flags-1", "sizehint-too-large", "flags-too-large"],
)
def test_constructor_arguments_as_select_epoll(args: tuple[int, ...]) -> None:
    # (minor).  Natively select.epoll(-1, 1) raises OSError("invalid flags"), errno
    # None, and a sizehint or flags past a C int is OverflowError ("Python int too large
    # to convert to C int").  The LibOS's Epoll.__init__ (libos/_epoll.py) raises
    # OSError(EINVAL, "Invalid argument") for the flags, makes an epoll for sizehint
    # 2**40, and gives OSError(EINVAL) for flags 2**40.
    got = []
    with booted("sgx", "raw") as libos:
        for make in (select.epoll, libos.epoll):
            try:
                make(*args).close()
            except Exception as exc:  # the outcome is what is compared
                got.append((type(exc).__name__, getattr(exc, "errno", None), str(exc)))
            else:
                got.append(("ok", None, ""))
    assert got[0][0] != "ok"
    assert got[1] == got[0]
