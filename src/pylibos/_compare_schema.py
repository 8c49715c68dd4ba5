"""The results format of ``pylibos compare --json``, typed and versioned: ``RunData`` and
its parts (``_schema`` is where every format is imported from, this one too).  The names of
the types' fields are the JSON's keys; ``FORMAT_VERSION`` is the version a run writes, key
``version``.  A workloads run's ``machine`` is typed as a compare run's (``Machine``).

``pylibos compare`` format history (``version``):

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
5. Per entry ``slices``: every slice measured, dropped ones too, with its round, the
   share of the measuring CPU other processes took meanwhile (``others``, null where the
   slice was too short to tell) and whether it was ``kept``, so whether the drop policy
   favours one configuration can be checked; ``stability.left_out``: configurations an
   interrupted run lost (their process did not answer after the Ctrl-C).
   ``projected_cycles_per_clone`` is the chosen cost of ``projection`` (the median of the
   batches' start medians; before, the median of every start).  Versions 3 and 4 are
   still rendered.
6. Every live count measured in the same rounds (``settings.live_in_same_rounds``):
   before, the live counts ran one after another, each in rounds of its own, so a
   configuration's start at 1 live and at 1,000 live were measured tens of seconds
   apart and resampled independently, and the live scaling's interval held every slow
   drift of the machine.  Now each round measures a configuration's live counts back to
   back, and the bootstrap draws the same rounds for every entry of the run.  Per slice
   ``at_s``: when it started, in seconds from the run's start, so the order can be
   audited.  ``pylibos compare`` runs 15 rounds by default (5 before) for the same
   duration.  ``live_scaling`` is taken round by round: ``relative_to_native`` is the
   trimmed mean (20% at each end, on a log scale) of each round's quotient of its four
   slices' medians, with ``statistic`` naming it, ``rounds`` the rounds paired and
   ``per_round`` each one's quotient.  The bootstrap's second stage draws as many
   batches as the round drawn had (before: as many as the round whose place it filled,
   which overweighted slow rounds).  Versions 3 to 5 are still rendered, their live
   counts resampled apart and their live scaling the quotient of four medians, as they
   were measured.
7. The ratios between two configurations named in ``settings.ratios_in_rounds``
   (``compare`` names clone ÷ sgx/pipe and create_pollable_event ÷ sgx/pipe: in each
   entry's ``ratios`` and in the targets) are taken round by round, as live scaling is:
   the trimmed mean (20% at each end, on a log scale) of each round's quotient of the two
   slices' medians, with a one-stage bootstrap over the rounds.  start ÷ native stays the
   quotient of two medians (on measured runs the pairing did not narrow it).  Each target
   says how it was taken (``statistic``) and, when round by round, the rounds paired and
   each one's quotient (``rounds``, ``per_round``).  The rounds measure the
   configurations in the order ``settings.measuring_order`` (native between the two
   configurations its start targets divide, sgx/raw beside sgx/pipe), the whole order
   reversed in odd rounds, so the slices a ratio divides are a few slices apart and a
   steady drift across a round cancels over two rounds; before, in the order of
   ``settings.configs`` with only each configuration's live counts reversed, native and
   sgx/raw+pool were 4 to 10 s apart.  Version 6 files keep the quotient of two medians
   for every such ratio, as measured.
8. Native is measured twice in every round at the lowest and highest live counts
   (``settings.native_again`` names them): a second pair of slices at the round's start
   (its end in odd rounds), pooled with the first in the round's figures.  Native's own
   live quotient is half the noise of every configuration's live scaling, so the second
   pair narrows all five at once.  ``live_scaling`` (``settings.live_scaling_by_part``)
   is the quotient of two trimmed means, each of one part's own per-round quotients (the
   configuration's start at the highest live count ÷ at the lowest, and native's), with
   both parts' rounds kept (``own_per_round``, ``native_per_round``); ``per_round`` is
   still each round's whole quotient.  Before, the trimmed mean of the whole quotients:
   version 6 and 7 files keep it, as they were analysed.
9. A reference workload (system calls and a small loop,
   ``bench._reference_workload.reference_ns``) timed in each measuring process before
   every slice's first batch and after each batch: per slice ``reference_ns`` (its first
   and last), per batch ``batch_reference_ns`` (the mean of the references just before
   and just after it, one figure per batch as ``batch_rounds``).  With
   ``settings.reference_normalised`` (``compare``'s default; ``--no-reference`` turns it
   off) the ratios between configurations (start ÷ native, ÷ sgx/pipe) and live scaling
   are taken on times normalised by their batch's reference (time ÷ the batch's reference
   × the run's median reference, ``stability.reference_ns``), so the machine's speed
   state, which the reference sees too, cancels; the µs figures stay as measured.
   Versions 3 to 8 have no reference and are analysed as before.
10. Each configuration at each live count measured in several processes
   (``settings.processes``, ``K``; ``compare --processes``), and round ``r`` measured by
   every configuration's replica ``r mod K``, for an even ``K`` shifted by one every ``K``
   rounds (``settings.replica_of_round`` says so: a
   batch's slot follows from its ``batch_rounds``), so the number of slices and the
   measuring time per configuration are those of one process.  Each entry merges its
   ``K`` processes' results exactly (``bench._merge``): batches in round order, counts
   summed, host calls per clone over all the threads, ``phases_ns`` over every per-clone
   sample; per entry ``replicas`` (each process's slot, batches, threads, rounds and
   memory per live thread) and per slice ``replica``.  The bootstrap draws replica slots
   with replacement, then rounds within each drawn slot, then batches: a process's level
   (hash seed, memory layout, where its threads' stacks land), which no interval drawn
   within one process can hold, is in every interval.  Files before version 10 are read
   as ``K`` = 1, whose draw is exactly the one before.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from .libos import PHASES, Summary

FORMAT_VERSION = 10
"""``pylibos compare``'s format."""
READABLE_VERSIONS = (3, 4, 5, 6, 7, 8, 9, 10)
"""Compare versions ``pylibos report`` renders (their keys are the same)."""

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


LiveScaling = TypedDict(
    "LiveScaling",
    {
        "from": int,
        "to": int,
        "relative_to_native": IntervalJSON,
        # Format 6: the figure is a trimmed mean of per-round quotients; which statistic,
        # the rounds paired and each one's quotient.
        "statistic": NotRequired[str],
        "rounds": NotRequired[list[int]],
        "per_round": NotRequired[list[float]],
        # Format 8: the figure is the quotient of the trimmed means of each part's own
        # per-round quotients (the configuration's, native's), both kept.
        "own_per_round": NotRequired[list[float]],
        "native_per_round": NotRequired[list[float]],
    },
)


class SliceJSON(TypedDict):
    """One slice measured: its round, when it started (seconds from the run's start,
    format 6), the share of the measuring CPU other processes took meanwhile (None where
    it cannot be told), and whether it was kept."""

    round: int
    at_s: NotRequired[float]
    others: float | None
    kept: bool
    reference_ns: NotRequired[list[float]]
    """The reference workload's time before the slice's first batch and after its last
    (format 9)."""
    replica: NotRequired[int]
    """The replica slot of the process that measured it (format 10)."""


class ReplicaJSON(TypedDict):
    """One of an entry's measuring processes (format 10): its replica slot (it measured
    the rounds whose ``bench._resample.round_slots`` is ``slot``), the batches it ran, its
    threads, the rounds it measured and its memory per live thread."""

    slot: int
    batches: int
    threads: int
    rounds: list[int]
    rss_per_live_thread_kib: float | None


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
    slices: NotRequired[list[SliceJSON]]
    """Every slice measured, dropped ones too (format 5)."""
    rss_per_live_thread_kib: float | None
    batch_rounds: list[int]
    batch_reference_ns: NotRequired[list[float]]
    """Each batch's reference, ns: the mean of the reference workload's times just before
    and just after the batch (format 9)."""
    phases_ns: dict[str, PhaseSummary | None]
    batches_ns: dict[str, BatchFigures | None]
    host_calls_per_clone: float
    host_calls_by_kind_per_clone: dict[str, float]
    proportions: dict[str, float | None]
    projected_cycles_per_clone: float | None
    replicas: NotRequired[list[ReplicaJSON]]
    """The measuring processes merged into this entry (format 10)."""
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
    live_in_same_rounds: NotRequired[bool]
    """Every live count measured in the same rounds, so resampled together (format 6);
    absent before: each live count in rounds of its own."""
    ratios_in_rounds: NotRequired[list[str]]
    """The ratios between two configurations taken round by round, by their names in an
    entry's ``ratios`` ("clone ÷ sgx/pipe"; format 7)."""
    measuring_order: NotRequired[list[str]]
    """The configurations in the order an even round measures them; odd rounds reverse
    it (format 7)."""
    native_again: NotRequired[list[int]]
    """The live counts at which native is measured a second time in every round, at the
    round's start (at its end in odd rounds) (format 8)."""
    live_scaling_by_part: NotRequired[bool]
    """Live scaling is the quotient of the trimmed means of the configuration's and
    native's own per-round quotients (format 8); before, the trimmed mean of the rounds'
    whole quotients."""
    processes: NotRequired[int]
    """Measuring processes per configuration and live count (format 10; 1 before)."""
    replica_of_round: NotRequired[str]
    """How a round's replica slot follows from its number (format 10):
    ``bench._resample.REPLICA_OF_ROUND``."""
    reference_normalised: NotRequired[bool]
    """Ratios between configurations and live scaling are taken on times normalised by
    each batch's reference workload (format 9; ``--no-reference``: false)."""
    profile_every: NotRequired[int]
    """The LibOS profile timed one clone in this many: the phases' figures are over the
    sampled clones, ``start`` over every start (its mean carries the profile's cost once
    in this many).  Absent: every clone was timed (1).  At most the batch, so every batch
    holds a sampled clone; were one without, it would be recorded with the next as one
    (``batch_rounds`` then shorter than ``batches``), never as a 0."""


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
    left_out: NotRequired[list[str]]
    """Configurations left out of an interrupted run: their process did not answer the
    request for its results after the Ctrl-C (format 5)."""
    warnings: NotRequired[list[str]]
    until_stable: NotRequired[UntilStable]
    reference_ns: NotRequired[float | None]
    """The run's median slice reference, ns (format 9, set by the analysis): normalised
    times are a batch's time ÷ its reference × this."""


class TargetJSON(TypedDict):
    what: str
    value: IntervalJSON | None
    limit: float
    at_most: bool
    lives: list[int]
    verdict: str
    # Format 7: how the figure was taken; for a figure taken round by round, the rounds
    # paired and each one's quotient.
    statistic: NotRequired[str]
    rounds: NotRequired[list[int]]
    per_round: NotRequired[list[float]]
    normalised: NotRequired[bool]
    """Format 9: taken on times normalised by each batch's reference."""


class RunData(TypedDict):
    """A whole run: what ``pylibos compare --json`` writes."""

    version: int
    machine: Machine
    settings: SettingsJSON
    interrupted: bool
    stability: Stability
    configs: list[Entry]
    targets: NotRequired[list[TargetJSON]]
