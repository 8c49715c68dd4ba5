"""Fixtures shared by the PAL tests: a host of each kind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pylibos import pal

from ._pal_support import KINDS


@pytest.fixture(params=KINDS)
def host(request: pytest.FixtureRequest) -> Iterator[pal.Host]:
    """A fresh host of each kind, shut down at the end."""
    host = pal.open_host(request.param)
    yield host
    host.shutdown()
