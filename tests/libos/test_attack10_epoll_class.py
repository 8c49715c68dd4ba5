"""``select.epoll`` under the hook is still what a program can use it as: a class.

Natively ``select.epoll`` is a type, so ``isinstance(x, select.epoll)`` (type checks,
``functools.singledispatch`` registrations, "is this an epoll selector" tests in
libraries) works.  Under ``pylibos.libos.install`` it must go on working."""

from __future__ import annotations

import select
import selectors
from collections.abc import Iterator

import pytest

from pylibos import pal
from pylibos.libos import LibOS, install


@pytest.fixture(params=["native", "sgx/raw"])
def installed(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.param == "native":
        yield
        return
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    try:
        with install(libos):
            yield
    finally:
        libos.shutdown()
        host.shutdown()


def test_an_epoll_is_an_instance_of_select_epoll(installed: None) -> None:
    # Under the hook this failed (fixed).  Natively isinstance(select.epoll(), select.epoll)
    # is True.
    # Under install, select.epoll is an _EpollFactory instance (libos/_hook.py), and
    # isinstance raises TypeError("isinstance() arg 2 must be a type, a tuple of
    # types, or a union").
    ep = select.epoll()
    sel = selectors.DefaultSelector()
    try:
        assert isinstance(select.epoll, type)
        assert isinstance(ep, select.epoll)
        assert isinstance(sel._selector, select.epoll)  # type: ignore[attr-defined]
    finally:
        sel.close()
        ep.close()


def test_select_epoll_keeps_its_name_and_fromfd(installed: None) -> None:
    # Under the hook this failed (fixed): select.epoll.__name__ is "epoll" natively; the factory has
    # no __name__ (AttributeError), so code that logs or dispatches on it breaks.
    assert select.epoll.__name__ == "epoll"
    ep = select.epoll()
    try:
        twin = select.epoll.fromfd(ep.fileno())
        assert twin.fileno() == ep.fileno()  # HOLDS: fromfd shares the epoll
    finally:
        ep.close()


def test_the_stand_in_looks_like_the_class(installed: None) -> None:
    assert (select.epoll.__name__, select.epoll.__qualname__, select.epoll.__module__) == (
        "epoll",
        "epoll",
        "select",
    )
    ep = select.epoll(sizehint=4, flags=select.EPOLL_CLOEXEC)
    try:
        assert issubclass(type(ep), select.epoll)
        assert not isinstance(object(), select.epoll)
        assert not issubclass(int, select.epoll)
    finally:
        ep.close()


def test_asyncio_runs_over_the_stand_in(installed: None) -> None:
    import asyncio

    async def main() -> int:
        reader_ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_soon(reader_ready.set)
        await asyncio.wait_for(reader_ready.wait(), 10)
        return 7

    assert asyncio.run(main()) == 7


def test_after_uninstall_the_stand_in_makes_native_epolls() -> None:
    host = pal.open_host("sgx")
    libos = LibOS(host, "raw")
    try:
        with install(libos):
            stand_in = select.epoll
            libos_epoll = stand_in()
        native = stand_in()
        try:
            assert type(native).__module__ == "select"
            assert isinstance(native, stand_in)
            assert isinstance(libos_epoll, stand_in)
            assert select.epoll is not stand_in
        finally:
            native.close()
            libos_epoll.close()
    finally:
        libos.shutdown()
        host.shutdown()
