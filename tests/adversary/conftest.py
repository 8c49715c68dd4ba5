"""The hostile host, for every test in this directory."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

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
