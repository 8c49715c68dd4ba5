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


_TIMING_CHECK = "then - now > 0.01"
"""The one line of CPython's test_epoll that times the machine, not the epoll: a poll with
a zero or short timeout must return within 10 ms, which a loaded machine can miss."""
_TIMING_TRIES = 3


def _timing_only(result: unittest.TestResult) -> list[unittest.TestCase]:
    """The failed tests, if every failure is test_epoll's 10 ms check; else []."""
    failed = result.failures + result.errors
    if not failed or not all(_TIMING_CHECK in text for _, text in failed):
        return []
    return [case for case, _ in failed if isinstance(case, unittest.TestCase)]


def _run_timing_retried(suite: unittest.TestSuite) -> tuple[unittest.TestResult, str]:
    """Run ``suite``; a test that failed only on the 10 ms check runs again (up to three
    times in all) and counts as passed if it then passes: what it checks of the epoll is
    checked all the same.  Returns the result and the runner's output."""
    out = io.StringIO()
    result = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
    for case in _timing_only(result):
        for _ in range(_TIMING_TRIES - 1):
            if unittest.TextTestRunner(stream=out, verbosity=2).run(case).wasSuccessful():
                result.failures = [f for f in result.failures if f[0] is not case]
                result.errors = [e for e in result.errors if e[0] is not case]
                break
    return result, out.getvalue()


def test_cpython_test_epoll(libos_epoll: LibOS) -> None:
    created = libos_epoll.host.calls["epoll_create"]
    module = _stdlib_test("test.test_epoll")
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    assert suite.countTestCases() >= 10
    result, out = _run_timing_retried(suite)
    assert result.wasSuccessful(), out
    assert result.testsRun == suite.countTestCases()
    assert not result.skipped
    # Every epoll the tests made was the LibOS's (each makes one edge watch on the host).
    assert libos_epoll.host.calls["epoll_create"] - created >= suite.countTestCases()


class _Timed(unittest.TestCase):
    """Stand-ins for test_epoll's timed tests: slow for the first ``slow`` runs."""

    __test__ = False  # run by the test below, not collected on its own
    slow = 0
    runs = 0

    def test_timed(self) -> None:
        type(self).runs += 1
        then, now = (1.0, 0.0) if type(self).runs <= self.slow else (0.0, 0.0)
        self.assertFalse(then - now > 0.01)

    def test_wrong(self) -> None:
        type(self).runs += 1
        self.assertEqual(type(self).runs, -1)


@pytest.mark.parametrize(
    ("name", "slow", "passes", "runs"),
    [
        ("test_timed", 0, True, 1),
        ("test_timed", 2, True, 3),  # slow twice: the third try passes
        ("test_timed", 3, False, 3),  # slow every time: a failure, not hidden
        ("test_wrong", 0, False, 1),  # any other failure: never run again
    ],
)
def test_only_the_10_ms_check_is_tried_again(name: str, slow: int, passes: bool, runs: int) -> None:
    case: type[_Timed] = type("Case", (_Timed,), {"slow": slow, "runs": 0})
    result, out = _run_timing_retried(unittest.TestSuite([case(name)]))
    assert result.wasSuccessful() is passes, out
    assert case.runs == runs
