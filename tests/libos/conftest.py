"""Fixtures shared by the LibOS tests: a booted LibOS for every configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libos_support import CONFIG_IDS, CONFIGS, INJECTABLE, INJECTABLE_IDS, booted
from pylibos.libos import LibOS


@pytest.fixture(params=CONFIGS, ids=CONFIG_IDS)
def libos(request: pytest.FixtureRequest) -> Iterator[LibOS]:
    """A LibOS booted on a fresh host, per configuration; checked released at the end."""
    kind, events = request.param
    with booted(kind, events) as booted_libos:
        yield booted_libos


@pytest.fixture(params=INJECTABLE, ids=INJECTABLE_IDS)
def injectable_libos(request: pytest.FixtureRequest) -> Iterator[LibOS]:
    """A LibOS on every configuration whose event channel a test can forge wakeups into."""
    kind, events = request.param
    with booted(kind, events) as booted_libos:
        yield booted_libos
