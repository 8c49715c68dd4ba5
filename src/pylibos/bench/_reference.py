"""Times normalised by the reference workload, for the ratios between configurations and
live scaling.

The shared machine this is measured on has speed states lasting from a fraction of a
second to many seconds, and a slice's thread starts land in one or the other: that decides
most of the round-to-round spread of start ÷ native.  Each measuring process times a fixed
reference workload (``_reference_workload.reference_ns``: system calls and bytecodes) before a
slice's first batch and after each batch; it sees the same states.  A batch's time divided
by its reference (the mean of the one before and the one after it), times the run's median
reference (so the unit stays ns), has the state divided out; where two configurations'
batches caught different states, their normalised ratio no longer does.  The µs figures a
run reports stay as measured: only the ratios between configurations and live scaling are
taken on normalised times (``docs/benchmark.md``, "The reference")."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from .._schema import BatchFigures, Entry, RunData
from ._resample import Floats, choose_rounds, processes_of, round_slots


@dataclass(frozen=True)
class ReferenceView:
    """What a run's ratios are taken on: ``data`` normalised by the reference, or None
    (times as measured) with ``why`` saying why, unless the run chose so itself."""

    data: RunData | None
    reference_ns: float | None
    """The run's median slice reference (the scale of the normalised times)."""
    why: str | None = None
    """Why the run's references could not be used, where it asked for them."""


def _label(entry: Entry) -> str:
    return f"{entry['name']} at {entry['live']} live"


def run_reference(data: RunData) -> float | None:
    """The median over every kept slice of the run of its reference (the mean of before
    and after), or of every batch's where the slices do not say; None without one."""
    kept = [
        (s["reference_ns"][0] + s["reference_ns"][1]) / 2
        for e in data["configs"]
        for s in e.get("slices", [])
        if s.get("kept") and "reference_ns" in s
    ]
    if not kept:
        kept = [v for e in data["configs"] for v in e.get("batch_reference_ns", [])]
    good = [v for v in kept if math.isfinite(v) and v > 0]
    return float(statistics.median(good)) if good else None


def problem(data: RunData) -> str | None:
    """Why this run's batches cannot be normalised by their references, or None."""
    for e in data["configs"]:
        refs = e.get("batch_reference_ns")
        if refs is None:
            return f"{_label(e)} has no reference times"
        if len(refs) < len(e["batch_rounds"]):
            return f"{_label(e)} has fewer reference times than batches"
        bad = [v for v in refs if not (math.isfinite(v) and v > 0)]
        if bad:
            return f"{_label(e)} has a reference time of {bad[0]!r} ns (not a positive time)"
    return None


def _scaled(per: BatchFigures, factors: list[float]) -> BatchFigures:
    return {
        "median": [v * k for v, k in zip(per["median"], factors, strict=False)],
        "mean": [v * k for v, k in zip(per["mean"], factors, strict=False)],
    }


def normalise(data: RunData, scale: float) -> RunData:
    """A copy of ``data`` whose every batch figure is divided by its reference and
    multiplied by ``scale``; the entries are in the same places (``problem`` must be None)."""
    configs: list[Entry] = []
    for e in data["configs"]:
        factors = [scale / r for r in e["batch_reference_ns"]]
        batches = {
            p: None if per is None else _scaled(per, factors) for p, per in e["batches_ns"].items()
        }
        configs.append({**e, "batches_ns": batches})
    return {**data, "configs": configs}


def reference_view(data: RunData) -> ReferenceView:
    """How this run's ratios are taken: on normalised times where the run asked for it
    (``settings.reference_normalised``) and every entry has a positive reference for every
    batch; otherwise as measured, saying why when the run asked for it."""
    scale = run_reference(data)
    if not data["settings"].get("reference_normalised"):
        return ReferenceView(None, scale)
    why = problem(data)
    if why is None and scale is None:
        why = "the run has no positive reference time"
    if why is not None:
        return ReferenceView(None, scale, why)
    assert scale is not None
    return ReferenceView(normalise(data, scale), scale)


def slice_references(data: RunData) -> dict[int, list[float]]:
    """Every kept slice's reference (the mean of before and after), by round."""
    out: dict[int, list[float]] = {}
    for e in data["configs"]:
        for s in e.get("slices", []):
            ref = s.get("reference_ns")
            if s.get("kept") and ref is not None and min(ref) > 0:
                out.setdefault(int(s["round"]), []).append((ref[0] + ref[1]) / 2)
    return out


def reference_draws(data: RunData, seed: int, resamples: int) -> tuple[float, Floats] | None:
    """The run's median slice reference and its bootstrap distribution: replica slots then
    rounds drawn with replacement (``choose_rounds``), the median of their slices'
    references; None without references."""
    by_round = slice_references(data)
    if not by_round:
        return None
    groups = [np.asarray(v, dtype=np.float64) for _, v in sorted(by_round.items())]
    value = float(np.median(np.concatenate(groups)))
    rng = np.random.default_rng([seed, 1 << 24])
    slots = round_slots(sorted(by_round), processes_of(data))
    chosen = choose_rounds(len(groups), rng, resamples, slots)
    dist = np.array([np.median(np.concatenate([groups[k] for k in row])) for row in chosen])
    return value, dist
