"""``report --vs`` between runs whose phase profile sampled differently: a run that timed
every clone's phases (format 9, or ``--profile-every 1``) and one that timed one in 7
(format 10's default) differ by method: every start in the first paid the profile, one
start in 7 in the second.  ``differences`` must name it, as it names a difference in the
processes per configuration."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pylibos._schema import RunData
from pylibos.bench._vs import differences

from .test_bench_stats import entry, run_data


def _run(version: int, profile_every: int | None, processes: int = 1) -> RunData:
    rng = np.random.default_rng(7)
    data = run_data(
        entry("native", 50 * rng.normal(1, 0.05, 20)),
        entry("sgx/raw", 300 * rng.normal(1, 0.05, 20)),
        paired=True,
    )
    data["version"] = version
    if version >= 10:
        data["settings"]["processes"] = processes
        data["settings"]["replica_of_round"] = "round % processes"
    if profile_every is not None:
        data["settings"]["profile_every"] = profile_every
    return data


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((10, 1), (10, 7)),  # --profile-every 1 against the default
        ((9, None), (10, 7)),  # format 9 (every clone timed) against format 10
        ((10, 7), (10, 3)),
    ],
)
def test_report_vs_names_a_difference_in_the_profiles_sampling(
    a: tuple[int, int | None], b: tuple[int, int | None]
) -> None:
    run_a, run_b = _run(*a), _run(*b)
    notes = differences(run_a, run_b)
    assert any("profile" in n for n in notes), notes
    # Named both ways round, and not for two runs that sampled alike.
    assert any("profile" in n for n in differences(run_b, run_a))
    assert not any("profile" in n for n in differences(run_b, copy.deepcopy(run_b)))


def test_report_vs_format_9_against_format_10_in_one_process_every_clone_timed() -> None:
    """A guarantee that holds: format 9 against format 10 with one process and every clone
    timed (the same method) gives no note about processes or sampling."""
    notes = differences(_run(9, None), _run(10, 1))
    assert not any("process" in n or "profile" in n for n in notes), notes
