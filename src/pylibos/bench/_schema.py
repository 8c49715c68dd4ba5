"""The results of a benchmark run, as its JSON holds them: one typed, versioned schema.

Every module of the benchmark reads and writes runs through these types; ``_results``
checks a file against them before anything else reads it.  The names are the JSON's keys.

Format history (``version``):

1. First version.
2. Per-batch samples of every phase (``batches_ns``: each batch's median and mean per
   clone) and the round of each batch (``batch_rounds``), from which every figure gets a
   bootstrap interval (``intervals``, ``ratios``); ``targets`` with verdicts;
   ``stability`` (load average before and after, CPU count, frequency governor,
   warnings); ``projection`` at the low and high ends of the published OCALL cost.
   Version 1 files hold no per-batch samples, so no interval can be drawn from them.
   Later, compatibly: ``tls`` in ``settings`` and in each entry (null for native and
   direct); files without it were measured with mbed TLS.
3. ``start``, the application's ``threading.Thread(target=f).start()``, timed for every
   configuration (in ``phases_ns``, ``batches_ns``, ``intervals``); a LibOS row's phases
   are those of the clone inside it, and native has none but ``start``.  Ratios to native
   are of ``start``; ``projection`` prices ``start``; ``live_scaling`` at the highest live
   count is that configuration's start (highest ÷ lowest live) divided by native's.
   Version 2 timed ``LibOS.clone`` against native's ``Thread.start()``, different work.
4. Each configuration measured in a process of its own, every process on one CPU, the
   garbage collector off while starts are timed (``docs/benchmark.md``, "Measuring
   apart"): ``settings.cpu`` (the CPU, or null when ``--all-cpus`` left the kernel to
   choose) and ``stability.steal`` (the share of the CPUs' time the hypervisor gave to
   others during the run, null where ``/proc/stat`` shows none); per entry
   ``slices_dropped`` and ``slices_busy_kept`` (slices another process crowded on the
   measuring CPU: dropped and measured again, or kept when the retries were spent).  The
   keys are otherwise those of version 3, so ``pylibos report`` still renders a version 3
   file; ``report --vs`` of a version 3 and a version 4 run warns that they were measured
   differently.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from ..libos import PHASES, Summary

FORMAT_VERSION = 4
READABLE_VERSIONS = (3, 4)
"""Versions ``pylibos report`` renders (their keys are the same)."""

TIMED = ("start", *PHASES)
"""Every timed figure of a configuration: ``start``, the application's statement
``threading.Thread(target=f).start()``, and the LibOS's phases inside it (none for
``native``, whose start is CPython's own)."""


PhaseSummary = Summary
"""Per-clone figures of one phase over the whole run, in ns: mean, median, p95."""


class BatchFigures(TypedDict):
    """One figure per batch, in ns: the batch's median clone and its mean per clone."""

    median: list[float]
    mean: list[float]


class IntervalJSON(TypedDict):
    value: float
    low: float | None
    high: float | None


class Projection(TypedDict):
    """Projected cycles per start at the low end, the chosen and the high end of the
    OCALL cost."""

    ocall_cycles: list[float]
    cycles: list[float]


LiveScaling = TypedDict("LiveScaling", {"from": int, "to": int, "relative_to_native": IntervalJSON})


class Entry(TypedDict):
    """One configuration at one live count."""

    name: str
    pal: str | None
    events: str | None
    pool: bool
    tls: str | None
    live: int
    batches: int
    threads: int
    slices_dropped: NotRequired[int]
    """Slices dropped because another process was busy on the measuring CPU (format 4)."""
    slices_busy_kept: NotRequired[int]
    """Slices kept though another process was busy on it: their retries were spent."""
    rss_per_live_thread_kib: float | None
    batch_rounds: list[int]
    phases_ns: dict[str, PhaseSummary | None]
    batches_ns: dict[str, BatchFigures | None]
    host_calls_per_clone: float
    host_calls_by_kind_per_clone: dict[str, float]
    proportions: dict[str, float | None]
    projected_cycles_per_clone: float | None
    # Added by the analysis (``_analyse.analyse``), drawn again from the samples on load.
    intervals: NotRequired[dict[str, IntervalJSON]]
    ratios: NotRequired[dict[str, IntervalJSON]]
    projection: NotRequired[Projection | None]
    live_scaling: NotRequired[LiveScaling | None]


class Machine(TypedDict):
    cpu: str
    cores: int | None
    python: str
    pylibos: str
    ghz_nominal: float


class SettingsJSON(TypedDict):
    configs: list[str]
    duration_s: float
    batch: int
    rounds: int
    live: list[int]
    ocall_cycles: int
    ghz: float
    ghz_given: bool
    tls: str | None
    cpu: NotRequired[int | None]


class UntilStable(TypedDict):
    width: float
    budget_s: float
    reached: dict[str, bool]


class Stability(TypedDict):
    load_before: list[float] | None
    load_after: list[float] | None
    cpu_count: int | None
    governor: str | None
    steal: NotRequired[float | None]
    warnings: NotRequired[list[str]]
    until_stable: NotRequired[UntilStable]


class TargetJSON(TypedDict):
    what: str
    value: IntervalJSON | None
    limit: float
    at_most: bool
    lives: list[int]
    verdict: str


class RunData(TypedDict):
    """A whole run: what ``pylibos compare --json`` writes."""

    version: int
    machine: Machine
    settings: SettingsJSON
    interrupted: bool
    stability: Stability
    configs: list[Entry]
    targets: NotRequired[list[TargetJSON]]
