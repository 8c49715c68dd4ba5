"""What makes a run's figures unreliable (the warnings ``compare`` prints, as pyperf warns
about an unstable benchmark), and the projected SGX cost of a thread start."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._schema import Entry, Projection, RunData
from ._machine import BUSY_LIMIT, BUSY_RETRIES

CV_WARNING = 0.10
"""A configuration whose batch medians vary more than this (coefficient of variation) is
named in a warning, as pyperf warns about an unstable benchmark."""
STEAL_WARNING = 0.10
"""A run during which the hypervisor took more than this share of the CPUs' time is named
in a warning."""
OCALL_RANGE = (8_000, 17_000)
"""Published cost of an SGX OCALL round trip, in cycles: warm caches to cold ones."""


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample standard deviation over mean)."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if mean <= 0:
        return None
    return float(arr.std(ddof=1)) / mean


def label(entry: Entry) -> str:
    return f"{entry['name']} ({entry['live']} live)"


def stability_warnings(data: RunData) -> list[str]:
    """What makes this run's figures unreliable, each with what to do about it."""
    out: list[str] = []
    stab = data["stability"]
    cpus = stab.get("cpu_count") or data["machine"].get("cores") or 1
    before = stab.get("load_before")
    if before and before[0] > cpus / 2:
        out.append(
            f"the machine was busy: load average {before[0]:.2f} on {cpus} CPUs before the "
            "run; figures will vary between runs: measure on a quieter machine"
        )
    unstable = []
    for entry in data["configs"]:
        per = entry["batches_ns"].get("start")
        spread = cv(per["median"]) if per else None
        if spread is not None and spread > CV_WARNING:
            unstable.append(f"{label(entry)} {spread:.0%}")
    if unstable:
        out.append(
            f"unstable (batches' start medians vary by over {CV_WARNING:.0%}, coefficient of "
            f"variation): {', '.join(unstable)}; use more --rounds or a longer --duration, "
            "or a quieter machine"
        )
    busy = [
        f"{label(e)} {e['slices_busy_kept']}" for e in data["configs"] if e.get("slices_busy_kept")
    ]
    if busy:
        out.append(
            "slices measured while another process took over "
            f"{BUSY_LIMIT:.0%} of the measuring CPU, kept after {BUSY_RETRIES} retries each: "
            f"{', '.join(busy)}; measure on a quieter machine"
        )
    for why in stab.get("left_out") or []:
        out.append(f"left out: the run was interrupted and {why}; its results are lost")
    steal = stab.get("steal")
    if steal is not None and steal > STEAL_WARNING:
        out.append(
            f"the hypervisor gave {steal:.0%} of the CPUs' time to other machines during the "
            "run (steal): figures will vary between runs: measure on a quieter host"
        )
    until = stab.get("until_stable")
    if until:
        for live, ok in until.get("reached", {}).items():
            if not ok:
                out.append(
                    f"--until-stable {until['width']:g}: the budget of {until['budget_s']:g} s "
                    f"at {live} live ended before every target's interval was that narrow"
                )
    return out


def projected(entry: Entry, ghz: float, chosen: int) -> Projection | None:
    """``entry``'s projection from the figure every rendering shows for its start: the
    median of its batches' medians (None if it started no thread).  The JSON's
    ``projected_cycles_per_clone`` is its chosen cost, so table and JSON agree."""
    per = entry["batches_ns"].get("start")
    if per is None or not per["median"]:
        return None
    n = min(len(per["median"]), len(entry["batch_rounds"]))
    if n == 0:
        return None
    start = float(np.median(np.asarray(per["median"][:n], dtype=np.float64)))
    return projection(start, ghz, float(entry["host_calls_per_clone"]), chosen)


def projection(clone_ns: float, ghz: float, calls: float, chosen: int) -> Projection:
    """Projected cycles per clone at the low end, the chosen and the high end of the
    OCALL cost."""
    costs = [OCALL_RANGE[0], chosen, OCALL_RANGE[1]]
    return {
        "ocall_cycles": [float(c) for c in costs],
        "cycles": [clone_ns * ghz + calls * c for c in costs],
    }
