"""Fixtures shared by the LibOS tests: a booted LibOS for every configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libos_support import CONFIG_IDS, CONFIGS, booted
from pylibos.libos import LibOS


@pytest.fixture(params=CONFIGS, ids=CONFIG_IDS)
def libos(request: pytest.FixtureRequest) -> Iterator[LibOS]:
    """A LibOS booted on a fresh host, per configuration; checked released at the end."""
    kind, events = request.param
    with booted(kind, events) as booted_libos:
        yield booted_libos
