"""CPython's own epoll tests, run with ``select.epoll`` replaced by the LibOS epoll.  (Its
selectors tests over the LibOS epoll run under ``pylibos run``: test_cpython_under_run.py.)

The test modules come from the interpreter's ``test`` package (not copied here); an
interpreter built without it skips these tests and says so.
"""

from __future__ import annotations

import importlib
import io
import select
import selectors
import types
import unittest
from collections.abc import Iterator
from typing import Any

import pytest

from pylibos.libos import Epoll, LibOS


def _stdlib_test(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{name} is not installed with this Python (no stdlib test package): {exc}")


@pytest.fixture
def libos_epoll(libos: LibOS, monkeypatch: pytest.MonkeyPatch) -> Iterator[LibOS]:
    """``select.epoll`` (and the class ``selectors.EpollSelector`` uses) make LibOS epolls
    while the test runs."""

    class LibOSEpoll:
        def __new__(cls, sizehint: int = -1, flags: int = 0) -> Any:
            return libos.epoll(sizehint, flags)

        fromfd = staticmethod(Epoll.fromfd)

    monkeypatch.setattr(select, "epoll", LibOSEpoll)
    monkeypatch.setattr(selectors.EpollSelector, "_selector_cls", LibOSEpoll)
    yield libos


def _run(suite: unittest.TestSuite) -> unittest.TestResult:
    out = io.StringIO()
    result = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
    assert result.wasSuccessful(), out.getvalue()
    assert result.testsRun == suite.countTestCases()
    return result


def test_cpython_test_epoll(libos_epoll: LibOS) -> None:
    created = libos_epoll.host.calls["epoll_create"]
    module = _stdlib_test("test.test_epoll")
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    assert suite.countTestCases() >= 10
    result = _run(suite)
    assert not result.skipped
    # Every epoll the tests made was the LibOS's (each makes one edge watch on the host).
    assert libos_epoll.host.calls["epoll_create"] - created >= suite.countTestCases()
