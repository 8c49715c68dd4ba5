"""A Ctrl-C while the results of ``K`` × configurations measuring processes are collected:
what the processes already answered is kept (merged into their configuration's entry) or
named as left out, never dropped without a word; no process or descriptor is left."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from libos_support import open_fds
from pylibos.bench import Settings, _measure, parse_config_list, run
from pylibos.bench._processes import _Process

from .test_measuring_processes import _children, _end_for_sure


@pytest.mark.parametrize("k", [1, 2])
def test_ctrl_c_while_collecting_keeps_what_was_collected(
    monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """A run that measured all its rounds; while its results are collected, a real SIGINT
    lands as the first process of the second configuration is asked (the first
    configuration's ``k`` processes have answered).  The first configuration's results
    are in the run (merged from its ``k`` answers), as they were before format 10; each
    process whose results are not in the run is named in ``left_out``."""
    monkeypatch.setattr(_measure, "_END_S", 0.0)
    asked: list[str] = []
    original = _Process.result

    def result(self: _Process, within: float = 300.0) -> Any:
        asked.append(self.name)
        if len(asked) == k + 1:
            signal.raise_signal(signal.SIGINT)  # the Ctrl-C, as the user presses it
        return original(self, within)

    monkeypatch.setattr(_Process, "result", result)
    fds = open_fds()
    settings = Settings(duration=0.04 * k, batch=2, rounds=2 * k, processes=k)
    try:
        outcome = run(parse_config_list("native,direct/eventfd"), settings)
    finally:
        left = _children()
        _end_for_sure(left)
    assert left == []
    assert open_fds() == fds
    assert outcome.interrupted
    assert len(asked) == k + 1, asked
    kept = {e["name"]: [r["slot"] for r in e.get("replicas", [])] for e in outcome.results}
    named = outcome.left_out
    # The first configuration answered in full before the Ctrl-C: its results are kept.
    assert kept.get("native") == list(range(k)), (kept, named)
    # Every process is either in the results or named as left out.
    for slot in range(k):
        name = "direct/eventfd" if k == 1 else f"direct/eventfd (process {slot + 1} of {k})"
        assert slot in kept.get("direct/eventfd", []) or any(n.startswith(name) for n in named), (
            kept,
            named,
        )
