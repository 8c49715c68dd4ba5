"""``select.epoll`` under the hook is a class made by a metaclass (``_EpollFactory`` in
``libos/_hook.py``).  What a program can do with the class and its objects natively,
compared with what it gets under ``install``."""

from __future__ import annotations

import copy
import select
from collections.abc import Iterator

import pytest

from libos_support import booted
from pylibos.libos import _hook, install

NATIVE = _hook._ORIGINAL_EPOLL


@pytest.fixture
def installed() -> Iterator[None]:
    with booted("direct", "pipe") as libos, install(libos):
        yield


def _subclassing(base: type) -> str:
    """What ``class MyEpoll(base)`` gives: the error, or what its instances are."""
    try:

        class MyEpoll(base):  # type: ignore[misc]
            def mine(self) -> str:
                return "mine"

    except TypeError as exc:
        return f"TypeError: {exc}"
    ep = MyEpoll()
    try:
        return f"instance of {type(ep).__name__}, has mine: {hasattr(ep, 'mine')}"
    finally:
        ep.close()


def test_select_epoll_is_not_an_acceptable_base_type(installed: None) -> None:
    # Natively ``class MyEpoll(select.epoll)`` raises TypeError ("type
    # 'select.epoll' is not an acceptable base type": the C type has no
    # Py_TPFLAGS_BASETYPE).  Under install the stand-in is an ordinary class of
    # _EpollFactory (libos/_hook.py, _epoll_class), so the subclass is made, and
    # MyEpoll() goes through _EpollFactory.__call__, which returns a plain LibOS Epoll:
    # not a MyEpoll, without the subclass's methods (yet isinstance(ep, MyEpoll) is True,
    # as __instancecheck__ accepts any Epoll).
    native = _subclassing(NATIVE)
    assert native == "TypeError: type 'select.epoll' is not an acceptable base type"
    assert _subclassing(select.epoll) == native


def test_an_epoll_is_not_copied(installed: None) -> None:
    # Natively copy.copy(ep) raises TypeError("cannot pickle 'select.epoll'
    # object"): an epoll is a descriptor, not a value.  Under install copy.copy of a
    # LibOS Epoll (libos/_epoll.py, a plain class with no __reduce_ex__/__copy__) makes
    # a second object sharing the EpollInstance, claiming to own it (_made_it): closing
    # the copy closes the program's epoll under it (its polls then EBADF).
    native = NATIVE()
    try:
        with pytest.raises(TypeError, match=r"cannot pickle 'select\.epoll' object"):
            copy.copy(native)
    finally:
        native.close()
    ep = select.epoll()
    try:
        with pytest.raises(TypeError, match=r"cannot pickle 'select\.epoll' object"):
            twin = copy.copy(ep)
            twin.close()
    finally:
        ep.close()


def test_type_of_an_epoll_is_select_epoll(installed: None) -> None:
    # Natively type(select.epoll()) is select.epoll (code dispatching on the
    # exact type, ``type(x) is select.epoll`` or a dict keyed by type, relies on it).
    # Under install type(ep) is pylibos.libos._epoll.Epoll: the stand-in's __call__
    # (libos/_hook.py, _EpollFactory.__call__) returns LibOS.epoll's object, not an
    # instance of the stand-in; only isinstance/issubclass are patched.
    native = NATIVE()
    try:
        assert type(native) is NATIVE
    finally:
        native.close()
    ep = select.epoll()
    try:
        assert type(ep) is select.epoll
    finally:
        ep.close()
