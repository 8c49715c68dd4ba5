"""The hostile host, for every test in this directory."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from pylibos.libos import _event, _interest, _ipc

from .hostile import HostileHost, pidfd_getfd_works


@functools.cache
def _can_grab() -> bool:
    return pidfd_getfd_works()


@pytest.fixture
def hostile() -> Iterator[HostileHost]:
    """A host process that can copy this process's descriptors (pidfd_getfd)."""
    if not _can_grab():
        pytest.skip("pidfd_getfd is not available here (Linux >= 5.6 and ptrace rights needed)")
    with HostileHost() as host:
        yield host


SHORT_RECHECK_S = 0.25


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "keep_recheck: sleepers look again after the real RECHECK_S, not 0.25 s"
    )


@pytest.fixture(autouse=True)
def short_recheck(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sleepers look again after 0.25 s instead of 2 s, so that attacks only that finds
    (a descriptor closed under a sleeper) are found quickly.  A test that tells the
    look-again apart from a prompter wakeup keeps the real value (marked keep_recheck)."""
    if request.node.get_closest_marker("keep_recheck") is not None:
        return
    us = int(SHORT_RECHECK_S * 1_000_000)
    monkeypatch.setattr(_event, "_RECHECK_US", us)
    monkeypatch.setattr(_interest, "_RECHECK_US", us)
    monkeypatch.setattr(_ipc, "RECHECK_S", SHORT_RECHECK_S)
