"""A configuration at one live count measured in slices of whole batches: the timing every
subject shares (``_subjects`` holds the configurations themselves).

Every configuration times the same statement, ``threading.Thread(target=f).start()``:
``native`` with CPython's own thread start, every LibOS configuration with the LibOS
installed under ``threading`` (``pylibos.libos.install``), so the start runs the LibOS
clone path.  ``start`` is that statement's time; the LibOS profile times the phases of
the clone inside it.  Each batch starts ``batch`` threads; every thread exits at once and
the batch is joined before the next starts.

The cyclic garbage collector is off while a batch's starts are timed and back on between
batches, as ``timeit`` does: a collection of the older generations walks every tracked
object of the process, thousands of ``Thread`` objects with 1,000 live threads, and would
land in one thread's start as milliseconds that belong to no thread start.

A LibOS configuration's profile times one clone in a few (``LibOSSubject``): a batch's
phase figures are over its sampled clones.  A batch without one (batches smaller than the
sampling interval) has no figure of any phase, and recording a 0 for it would be a false
figure: it is recorded together with the batch after it, as one, its starts with that
batch's (``batches`` counts the batches run, ``batch_rounds`` one figure per record).

Batches run in slices of a fixed time; a slice another process crowded on the measuring
CPU is dropped and measured again.  The reference workload (``_reference_workload``) is
timed before a slice's first batch and after each batch.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

from .._schema import TIMED, BatchFigures, Entry, SliceJSON
from ..libos import summary
from ._configs import Config
from ._machine import BUSY_LIMIT, BUSY_RETRIES, cpu_use, others_share, rss_kib
from ._reference_workload import no_gc, reference_ns

JOIN_S = 30.0
"""How long a measured or live thread is given to end once released."""


def _noop() -> None:
    return None


class Subject:
    """One configuration at one live-thread count, set up once and measured in slices."""

    profile_every = 1
    """The profile times one clone in this many (a LibOS subject's, ``make_subject``).  A
    batch has a clone at least, so this many batches in a row cannot all end with nothing
    to record (no sampled clone): more, and the subject is taken for broken."""

    def __init__(self, config: Config, live: int, batch: int, tls: str | None = None) -> None:
        self.config = config
        self.live = live
        self.batch = batch
        self.tls = tls
        self.batches = 0
        self.started = 0
        """Threads started by measured batches, those of dropped slices too."""
        self.slices_dropped = 0
        self.busy_kept = 0
        """Slices kept though another process was busy on the CPU (retries spent)."""
        self.slices: list[SliceJSON] = []
        """Every slice measured, dropped ones too: its round, when it started, the share
        of the measuring CPU other processes took meanwhile (None where it cannot be
        told), kept or not."""
        self.origin = 0.0
        """The run's start (``time.monotonic``), from which slices' starts are counted."""
        self.rss_per_live_kib: float | None = None
        # Each complete batch's median and mean per clone, by phase, and the round it ran
        # in: the samples the bootstrap intervals resample (see ``_stats``).
        self.batch_ns: dict[str, BatchFigures] = {p: {"median": [], "mean": []} for p in TIMED}
        self.batch_rounds: list[int] = []
        self.batch_reference: list[float] = []
        """Each batch's reference (``reference_ns``): the mean of the reference taken just
        before the batch and the one just after, so its times can be normalised by it."""
        # Every per-clone sample of the run, by phase (0 where a clone skipped the phase).
        self._ns: dict[str, list[int]] = {p: [] for p in TIMED}
        self._start_ns: list[int] = []

    def setup(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        raise NotImplementedError

    def result(self) -> Entry:
        raise NotImplementedError

    def _batch_figures(self) -> dict[str, tuple[float, float] | None] | None:
        """The (median, mean) per clone of each phase in the batches run since the last
        record; a phase missing from it (or None) is one no clone of them ran.  Also keeps
        their samples for the run's figures.  None, taking nothing, when they have no
        figure to give yet (no sampled clone): the next batch's record holds them too."""
        raise NotImplementedError

    def run_batch(self) -> None:
        self._start_batch()

    def run_for(self, seconds: float, round_no: int = 0, reference: float | None = None) -> float:
        """Whole batches until ``seconds`` have passed; at least one.  After each batch
        the reference workload is timed (``reference_ns``), and the batch's reference is
        the mean of the one before it (``reference``, or the previous batch's after) and
        the one after.  Returns the last reference."""
        end = time.perf_counter() + seconds
        before = reference_ns() if reference is None else reference
        unrecorded = 0
        while True:
            self.run_batch()
            self.batches += 1
            if not self._record_batch(round_no):
                # Kept for the next batch's record (no sampled clone): the slice goes on
                # until it ends on a record, so no batch is carried into another slice.
                unrecorded += 1
                if unrecorded > self.profile_every:
                    raise RuntimeError(
                        f"{self.config.name}: {unrecorded} batches in a row without a"
                        " figure to record (no clone sampled)"
                    )
                continue
            unrecorded = 0
            after = reference_ns()
            missing = len(self.batch_rounds) - len(self.batch_reference)
            self.batch_reference += [(before + after) / 2] * missing
            before = after
            if time.perf_counter() >= end:
                return after

    def run_slice(self, seconds: float, round_no: int, cpu: int | None) -> int:
        """A slice (``run_for``) measured while no other process took more than
        ``BUSY_LIMIT`` of ``cpu``: one that did is dropped and measured again, at most
        ``BUSY_RETRIES`` times (the last is kept whatever it met).  Returns how many
        were dropped.  Without a CPU to watch (``--all-cpus``), or for a slice too short
        for the kernel's CPU accounting to tell, every slice is kept."""
        dropped = 0
        while True:
            mark = self._mark()
            at = time.monotonic() - self.origin
            ref_before = reference_ns()
            before = cpu_use(cpu)
            ref_after = self.run_for(seconds, round_no, ref_before)
            share = others_share(before, cpu_use(cpu))
            kept = share is None or share <= BUSY_LIMIT or dropped == BUSY_RETRIES
            self.slices.append(
                {
                    "round": round_no,
                    "at_s": round(at, 4),
                    "others": None if share is None else round(share, 4),
                    "kept": kept,
                    "reference_ns": [round(ref_before, 1), round(ref_after, 1)],
                }
            )
            if kept:
                if share is not None and share > BUSY_LIMIT:
                    self.busy_kept += 1
                self.slices_dropped += dropped
                return dropped
            self._drop_since(mark)
            dropped += 1

    def _mark(self) -> tuple[int, int, dict[str, int]]:
        return self.batches, len(self.batch_rounds), {p: len(v) for p, v in self._ns.items()}

    def _drop_since(self, mark: tuple[int, int, dict[str, int]]) -> None:
        """Forget every batch recorded since ``mark`` (its threads still count in the
        host calls per thread: they made them)."""
        self.batches, kept, samples = mark
        del self.batch_rounds[kept:]
        del self.batch_reference[kept:]
        for per in self.batch_ns.values():
            del per["median"][kept:]
            del per["mean"][kept:]
        for phase, n in samples.items():
            del self._ns[phase][n:]

    def _record_batch(self, round_no: int) -> bool:
        """Record the figures of the batches run since the last record, as one batch of
        round ``round_no``; False if there was nothing to record yet.  A phase the
        record's sampled clones all skipped counts 0 (each of them ran it for 0 ns); a
        record has sampled clones, so no phase counts 0 for want of a sample."""
        if not self._start_ns:
            return False
        figures = self._batch_figures()
        if figures is None:
            return False
        for phase in TIMED:
            median, mean = figures.get(phase) or (0.0, 0.0)
            self.batch_ns[phase]["median"].append(median)
            self.batch_ns[phase]["mean"].append(mean)
        self.batch_rounds.append(round_no)
        return True

    def _start_batch(self) -> None:
        """The measured statement, ``batch`` times, with the collector off; then the
        batch is joined."""
        threads = []
        clock = time.perf_counter_ns
        times = self._start_ns
        with no_gc():
            for _ in range(self.batch):
                t0 = clock()
                t = threading.Thread(target=_noop)
                t.start()
                times.append(clock() - t0)
                threads.append(t)
        for t in threads:
            t.join(JOIN_S)
            if t.is_alive():
                raise RuntimeError(f"{self.config.name}: a thread did not end in {JOIN_S} s")

    def samples(self) -> dict[str, list[int]]:
        """Every per-clone sample of the run so far, by phase (a copy; phases with none
        left out): what the parent merges a configuration's processes' figures from."""
        return {p: list(v) for p, v in self._ns.items() if v}

    def _take_starts(self) -> list[int]:
        new, self._start_ns = self._start_ns, []
        self.started += len(new)
        self._ns["start"] += new
        return new

    def _measure_live(self, start_live: Callable[[], None]) -> None:
        if not self.live:
            return
        gc.collect()
        before = rss_kib()
        start_live()
        gc.collect()
        self.rss_per_live_kib = (rss_kib() - before) / self.live

    def _entry(self, tls: str | None, calls: float, by_kind: dict[str, float]) -> Entry:
        c = self.config
        n = self._complete()
        present = {p: bool(self._ns[p]) for p in TIMED}
        return {
            "name": c.name,
            "pal": c.pal,
            "events": c.events,
            "pool": c.pool,
            "tls": tls,
            "live": self.live,
            "batches": self.batches,
            "threads": len(self._ns["start"]),
            "slices_dropped": self.slices_dropped,
            "slices_busy_kept": self.busy_kept,
            "slices": list(self.slices),
            "rss_per_live_thread_kib": self.rss_per_live_kib,
            "batch_rounds": self.batch_rounds[:n],
            "batch_reference_ns": [round(v, 1) for v in self.batch_reference[:n]],
            "phases_ns": {p: summary(self._ns[p]) if present[p] else None for p in TIMED},
            # Per-batch figures of the phases that ran at all (None, as in phases_ns,
            # for a phase absent from the whole run).
            "batches_ns": {p: self._batches(p, n) if present[p] else None for p in TIMED},
            "host_calls_per_clone": calls,
            "host_calls_by_kind_per_clone": by_kind,
            "proportions": {},
            "projected_cycles_per_clone": None,
        }

    def _batches(self, phase: str, n: int) -> BatchFigures:
        """The first ``n`` batches' figures of ``phase``, to 0.1 ns."""
        per = self.batch_ns[phase]
        return {
            "median": [round(v, 1) for v in per["median"][:n]],
            "mean": [round(v, 1) for v in per["mean"][:n]],
        }

    def _complete(self) -> int:
        """Batches recorded in every list (a Ctrl-C inside ``_record_batch`` can leave
        the last one recorded in some lists only)."""
        lengths = [len(self.batch_rounds), len(self.batch_reference)]
        lengths += [len(per[k]) for per in self.batch_ns.values() for k in ("median", "mean")]
        return min(lengths)
