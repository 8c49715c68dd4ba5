"""Fixtures shared by the benchmark tests: one short real run of the default
configurations, measured once for the session."""

from __future__ import annotations

import pytest

from pylibos.bench import RunData, Settings, parse_config_list, run

SHORT = Settings(duration=0.2, batch=10, rounds=2)
"""The settings of ``short_run``: two rounds of a fifth of a second, batches of ten."""


@pytest.fixture(scope="session")
def short_run() -> RunData:
    """A real run of every default configuration under ``SHORT``, as its JSON."""
    configs = parse_config_list("native,sgx/pipe,sgx/raw,sgx/eventfd,sgx/raw+pool")
    outcome = run(configs, SHORT)
    assert not outcome.interrupted
    return outcome.as_json()
