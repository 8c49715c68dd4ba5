"""One configuration's results from its measuring processes, merged into one entry.

From format 10 each configuration at each live count is measured in ``K`` processes
(``--processes``), taking turns round by round: round ``r`` is measured by the replica
``_resample.round_slots`` gives (``r mod K``, shifted by one every ``K`` rounds for an even
``K``).
The merge is exact: the entry is what one process would have written had it measured
every batch of them all.  Batches (their figures, rounds and references) are put in round
order; counts are summed; host calls per clone are the processes' host calls summed over
the threads they all started; the phases' summaries (mean, median, p95 per clone) are
taken over every per-clone sample of every process, which each process sends beside its
entry.  Each slice and each process's share say which replica slot measured them, and
``settings.replica_of_round`` says how a batch's slot follows from its round, so it can be
checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .._schema import TIMED, BatchFigures, Entry, ReplicaJSON, SliceJSON
from ..libos import summary


@dataclass
class Measured:
    """What one measuring process answers for its results: its entry, every per-clone
    sample of each phase that ran, and the threads its measured batches started (dropped
    slices' too: its host calls per clone divide by them)."""

    entry: Entry
    slot: int
    samples_ns: dict[str, list[int]] = field(default_factory=dict)
    started: int = 0


def merge(parts: Sequence[Measured]) -> Entry:
    """One entry of ``parts``, the same configuration at the same live count measured by
    different replica slots (see the module's docstring)."""
    if not parts:
        raise ValueError("no process's results to merge")
    parts = sorted(parts, key=lambda m: m.slot)
    first = parts[0].entry
    for m in parts[1:]:
        if (m.entry["name"], m.entry["live"]) != (first["name"], first["live"]):
            raise ValueError(
                f"cannot merge {m.entry['name']} at {m.entry['live']} live with "
                f"{first['name']} at {first['live']} live"
            )
    # Every batch in round order; within a round, one process's batches in their order.
    order = sorted(
        ((r, k, i) for k, m in enumerate(parts) for i, r in enumerate(m.entry["batch_rounds"])),
        key=lambda t: (t[0], t[1], t[2]),
    )
    rounds = [r for r, _, _ in order]
    references: list[float] = []
    if all("batch_reference_ns" in m.entry for m in parts):
        refs = [m.entry.get("batch_reference_ns", []) for m in parts]
        references = [refs[k][i] for _, k, i in order if i < len(refs[k])]
    batches_ns: dict[str, BatchFigures | None] = {}
    for phase in TIMED:
        per = [m.entry["batches_ns"].get(phase) for m in parts]
        if all(p is None for p in per):
            batches_ns[phase] = None
            continue
        figures: BatchFigures = {"median": [], "mean": []}
        for _, k, i in order:
            own = per[k]
            # A phase no batch of a process ran counts 0 there, as within one process.
            figures["median"].append(own["median"][i] if own is not None else 0.0)
            figures["mean"].append(own["mean"][i] if own is not None else 0.0)
        batches_ns[phase] = figures
    slices: list[SliceJSON] = []
    for m in parts:
        slices += [{**s, "replica": m.slot} for s in m.entry.get("slices", [])]
    slices.sort(key=lambda s: (s.get("at_s", 0.0), s["round"]))
    samples: dict[str, list[int]] = {}
    for m in parts:
        for phase, values in m.samples_ns.items():
            samples.setdefault(phase, []).extend(values)
    started = sum(m.started for m in parts)
    # Each process divided its host calls by its threads (at least 1); the merge divides
    # their sum by all the threads (at least 1).
    calls = [max(m.started, 1) for m in parts]
    threads = max(started, 1)
    kinds = sorted({k for m in parts for k in m.entry["host_calls_by_kind_per_clone"]})
    by_kind = {
        k: sum(
            m.entry["host_calls_by_kind_per_clone"].get(k, 0.0) * c
            for m, c in zip(parts, calls, strict=True)
        )
        / threads
        for k in kinds
    }
    rss = [m.entry["rss_per_live_thread_kib"] for m in parts]
    rss_known = [v for v in rss if v is not None]
    replicas: list[ReplicaJSON] = [
        {
            "slot": m.slot,
            "batches": m.entry["batches"],
            "threads": m.entry["threads"],
            "rounds": sorted(set(m.entry["batch_rounds"])),
            "rss_per_live_thread_kib": m.entry["rss_per_live_thread_kib"],
        }
        for m in parts
    ]
    merged: Entry = {
        **first,
        "batches": sum(m.entry["batches"] for m in parts),
        "threads": sum(m.entry["threads"] for m in parts),
        "slices_dropped": sum(m.entry.get("slices_dropped", 0) for m in parts),
        "slices_busy_kept": sum(m.entry.get("slices_busy_kept", 0) for m in parts),
        "slices": slices,
        "rss_per_live_thread_kib": sum(rss_known) / len(rss_known) if rss_known else None,
        "batch_rounds": rounds,
        "phases_ns": {p: summary(samples[p]) if samples.get(p) else None for p in TIMED},
        "batches_ns": batches_ns,
        "host_calls_per_clone": sum(
            m.entry["host_calls_per_clone"] * c for m, c in zip(parts, calls, strict=True)
        )
        / threads,
        "host_calls_by_kind_per_clone": {k: v for k, v in by_kind.items() if v},
        "replicas": replicas,
    }
    if len(parts) == 1:
        # One process: its own quotients, not the same ones divided and multiplied again.
        merged["host_calls_per_clone"] = first["host_calls_per_clone"]
        merged["host_calls_by_kind_per_clone"] = first["host_calls_by_kind_per_clone"]
    if references or "batch_reference_ns" in first:
        merged["batch_reference_ns"] = references
    return merged
