"""The figures a profile gives: per-phase statistics, a frozen snapshot of them, and the
seed's proportions.  The benchmark and ``pylibos run`` take their summaries and
proportions from here too, so each is computed in one place."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

PROPORTIONS = {
    "p1": ("create_pollable_event", "get_new_thread"),
    "p2": ("create_pollable_event", "clone"),
    "p3": ("handshake", "clone"),
}
"""The seed's proportions: name -> (part, whole), each a ratio of per-clone means."""


@dataclass(frozen=True)
class PhaseStats:
    count: int
    sum_ns: int
    mean_ns: float
    median_ns: float
    p95_ns: float
    host_calls: int
    stdev_ns: float = 0.0
    """Sample standard deviation, from the exact streaming moments."""

    @property
    def host_calls_per_call(self) -> float:
        return self.host_calls / self.count if self.count else 0.0


@dataclass(frozen=True)
class ProfileSnapshot:
    """Frozen statistics of every phase seen so far, in the spirit of ``statistics()``:
    over the ``sampled`` clones of the ``started`` ones, one in ``every`` (None: the
    profile is off)."""

    phases: dict[str, PhaseStats]
    started: int = 0
    """Clones started (less those that failed), sampled or not."""
    sampled: int = 0
    """Clones sampled: each phase's ``count``."""
    every: int | None = 1
    """The sampling interval: one clone in ``every`` is sampled; None while off."""

    def get(self, phase: str) -> PhaseStats | None:
        return self.phases.get(phase)

    def proportion(self, part: str, whole: str) -> float | None:
        """Ratio of the phases' per-clone means (None where either never ran)."""
        p, w = self.phases.get(part), self.phases.get(whole)
        return _ratio(None if p is None else p.mean_ns, None if w is None else w.mean_ns)

    def proportions(self) -> dict[str, float | None]:
        """The seed's proportions (``PROPORTIONS``); None where a phase never ran."""
        return proportions({name: s.mean_ns for name, s in self.phases.items()})


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or not whole:
        return None
    return part / whole


def proportions(means: Mapping[str, float | None]) -> dict[str, float | None]:
    """The seed's proportions (``PROPORTIONS``) from per-clone means by phase: the one
    place they are computed (the profile's snapshot, ``pylibos run``, the benchmark).
    None where a phase did not run."""
    return {
        name: _ratio(means.get(part), means.get(whole))
        for name, (part, whole) in PROPORTIONS.items()
    }


def p95(sorted_values: Sequence[int]) -> float:
    """The 95th percentile of sorted values (inclusive method; the value itself for one)."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    return float(statistics.quantiles(sorted_values, n=20, method="inclusive")[-1])


class Summary(TypedDict):
    """Per-clone figures of one phase, in ns, as the benchmark's results hold them."""

    mean: float
    median: float
    p95: float


def summary(samples: Sequence[int]) -> Summary | None:
    """Mean, median and p95 of per-clone samples, as the benchmark's results hold them
    (None for no samples): the one place both the profile and the benchmark take them."""
    if not samples:
        return None
    ordered = sorted(samples)
    return {
        "mean": statistics.fmean(ordered),
        "median": float(statistics.median(ordered)),
        "p95": p95(ordered),
    }
