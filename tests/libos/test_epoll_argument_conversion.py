"""The constructor's, ``poll``'s and the descriptor methods' arguments converted and refused
as ``select.epoll`` does, value by value: the same exception type and message (or the
same result) on a ``select.epoll`` and on a LibOS epoll, open or closed."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

import pytest

from libos_support import booted


class Index:
    def __index__(self) -> int:
        return 2

    def __repr__(self) -> str:  # a stable test id
        return "Index()"


def outcome(call: Callable[[], object]) -> tuple[str, str]:
    try:
        result = call()
    except TypeError:  # its wording differs between CPython versions
        return ("TypeError", "")
    except Exception as exc:  # the outcome is what is compared
        return (type(exc).__name__, str(exc))
    return ("ok", repr(len(result)) if isinstance(result, list) else "")


CONSTRUCTOR: list[tuple[object, ...]] = [
    (), (-1,), (1,), (0,), (-2,), (2**31,), (-(2**31) - 1,), (1.0,), ("1",), (Index(),),
    (-1, 0), (-1, select.EPOLL_CLOEXEC), (-1, 1), (-1, -1), (-1, 2**31), (-1, 1.0), (0, 1),
]  # fmt: skip


@pytest.mark.parametrize("args", CONSTRUCTOR, ids=repr)
def test_the_constructor_as_select_epoll(args: tuple[object, ...]) -> None:
    got = []
    with booted("sgx", "raw") as libos:
        makers: tuple[Callable[..., Any], ...] = (select.epoll, libos.epoll)
        for make in makers:
            got.append(outcome(lambda: make(*args).close()))  # noqa: B023
    assert got[1] == got[0]


CALLS: dict[str, Callable[[Any, socket.socket], object]] = {
    "maxevents-index": lambda ep, a: ep.poll(0, Index()),
    "maxevents-str": lambda ep, a: ep.poll(0, "1"),
    "maxevents-c-int-min": lambda ep, a: ep.poll(0, -(2**31)),
    "maxevents-below-c-int": lambda ep, a: ep.poll(0, -(2**31) - 1),
    "maxevents-float-and-bad-timeout": lambda ep, a: ep.poll("x", 1.5),
    "bad-timeout-and-maxevents-0": lambda ep, a: ep.poll("x", 0),
    "mask-float": lambda ep, a: ep.modify(a, 1.0),
    "mask-huge": lambda ep, a: ep.modify(a, 2**40 | select.EPOLLIN),
    "fd-float": lambda ep, a: ep.register(1.0),
    "fd-fileno-str": lambda ep, a: ep.register(type("F", (), {"fileno": lambda s: "3"})()),
    "fd-below-c-int": lambda ep, a: ep.unregister(-(2**40)),
}


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize("name", list(CALLS))
def test_calls_as_select_epoll(name: str, closed: bool) -> None:
    got = []
    a, b = socket.socketpair()
    with a, b, booted("sgx", "raw") as libos:
        for make in (select.epoll, libos.epoll):
            ep = make()
            try:
                ep.register(a, select.EPOLLOUT)
                if closed:
                    ep.close()
                got.append(outcome(lambda: CALLS[name](ep, a)))  # noqa: B023
            finally:
                ep.close()
    assert got[1] == got[0]
