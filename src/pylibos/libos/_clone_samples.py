"""The sampled clones a profile keeps, and the figures read from them.

What it holds is bounded, so a program that clones for days keeps its profile on: per
phase, exact streaming moments (count, sum, sum of squares, host calls), and a reservoir
of ``RESERVOIR`` whole clones (Vitter's algorithm R: every clone seen so far is equally
likely to be in it) from which the median and p95 are taken.  Up to ``RESERVOIR`` clones
the reservoir holds every clone in the order taken, so short runs get exact percentiles.

A clone reaches it one of two ways.  The clone path (``Profile.close_clone``) appends one
row of its boundaries to ``_pending`` without the lock, and the clone that makes ``BATCH``
of them folds them all in (``_fold``), as every reader does first: the fold gives the
same moments and reservoir, with the same random draws, as recording each clone on its
own.  A clone timed with ``phase`` frames alone is recorded whole (``_record``).  Both
steps are one critical section each: a Ctrl-C waits for the end, so the moments and the
reservoir never disagree.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
from array import array
from collections.abc import Iterable
from itertools import compress, repeat
from operator import mul, sub
from typing import Any

from ..pal import critical_enter, critical_leave
from ._figures import PhaseStats, p95

ROOT = "clone"
"""The outermost phase a sample is taken under."""
RESERVOIR = 16384
"""Clones kept for percentiles; beyond it, a uniform sample of all clones."""
BATCH = 64
"""Clones a clone path appends before the one that reaches it folds them all in."""
_ABSENT = -1  # in a reservoir row: the phase did not run in that clone


class CloneSamples:
    """The moments and the reservoir of the sampled clones, and the rows of clones ended
    and not yet folded into them.  ``Profile`` is one: its clone path appends to
    ``_pending`` and calls ``_fold`` once there are ``BATCH`` rows, its phase frames
    call ``_record``, and its ``statistics()`` reads ``_phase_figures()``."""

    def __init__(self) -> None:
        self._random = random.Random().random
        # Guarded by _lock.
        self._lock = threading.Lock()
        self._sampled = 0
        # phase -> [count, sum ns, sum of squares, host calls]
        self._moments: dict[str, list[int]] = {}
        # phase -> one entry per kept clone (_ABSENT where the phase did not run); all
        # rows the same length, at most RESERVOIR.
        self._kept: dict[str, array[int]] = {}
        # Clones ended and not yet folded in, as ``close_clone`` appends them (appended
        # without _lock; taken out under it).
        self._pending: list[list[Any]] = []

    def _record(self, ns: int, calls: int, inner: dict[str, list[int]]) -> None:
        """Record one clone timed with ``phase`` frames, after those pending, in one
        step: a Ctrl-C waits for its end (a record cut short would leave the moments
        and the reservoir disagreeing, for good)."""
        entered = critical_enter()
        try:
            with self._lock:
                self._fold_pending()
                self._record_clone(ns, calls, inner)
        finally:
            critical_leave(entered)

    def _fold(self) -> None:
        """Fold the pending clones into the moments and the reservoir, in one step as
        ``_record`` records one."""
        entered = critical_enter()
        try:
            with self._lock:
                self._fold_pending()
        finally:
            critical_leave(entered)

    def _fold_pending(self) -> None:
        """Under _lock, Ctrl-C deferred.  The pending rows, in the order the clones ended,
        give the same moments and reservoir as recording each with ``_record_clone``
        would (the same draws for the reservoir), computed a phase at a time.  Nothing
        changes until all is computed; the rows leave the list last (clones ending
        meanwhile append behind them)."""
        pending = self._pending
        batch = pending[:]
        k = len(batch)
        if not k:
            return
        accs, t0, c0, t1, c1, t2, c2, t3, c3, te, ce = zip(*batch, strict=True)
        # phase -> (per-clone ns, _ABSENT where it did not run; runs; host calls)
        columns: dict[str, tuple[list[int], int, int]] = {}
        for i in compress(range(k), accs):  # clones with nested phase frames (handshakes)
            for name, (t, c) in accs[i].items():
                col = columns.get(name)
                if col is None:
                    col = columns[name] = ([_ABSENT] * k, 0, 0)
                col[0][i] = t
                columns[name] = (col[0], col[1] + 1, col[2] + c)
        columns["get_new_thread"] = (list(map(sub, t3, t0)), k, sum(c3) - sum(c0))
        columns["create_pollable_event"] = (list(map(sub, t2, t1)), k, sum(c2) - sum(c1))
        columns[ROOT] = (list(map(sub, te, t0)), k, sum(ce) - sum(c0))
        added: dict[str, tuple[int, int, int, int]] = {}
        for name, (values, ran, calls) in columns.items():
            if ran == k:
                total, squares = sum(values), sum(map(mul, values, values))
            else:
                ran_values = [v for v in values if v != _ABSENT]
                total, squares = sum(ran_values), sum(map(mul, ran_values, ran_values))
            added[name] = (ran, total, squares, calls)
        seen = self._sampled
        grow = max(0, min(k, RESERVOIR - seen))  # rows kept in the order taken
        draws = [int(self._random() * (seen + j + 1)) for j in range(grow, k)]
        # Commit.
        moments = self._moments
        kept = self._kept
        for name, (ran, total, squares, calls) in added.items():
            m = moments.get(name)
            if m is None:
                m = moments[name] = [0, 0, 0, 0]
                kept[name] = array("q", [_ABSENT]) * min(seen, RESERVOIR)
            m[0] += ran
            m[1] += total
            m[2] += squares
            m[3] += calls
        for name, row in kept.items():
            col = columns.get(name)
            if col is None:
                row.extend(repeat(_ABSENT, grow))
            else:
                row.extend(col[0][:grow])
        for j, slot in enumerate(draws, grow):
            if slot < RESERVOIR:
                for name, row in kept.items():
                    col = columns.get(name)
                    row[slot] = _ABSENT if col is None else col[0][j]
        self._sampled = seen + k
        del pending[:k]

    def _record_clone(self, ns: int, calls: int, inner: dict[str, list[int]]) -> None:
        """One whole clone: ``ns`` and ``calls`` of the root phase, ``inner`` of the rest.
        Under _lock.  On the clone path: kept plain and short."""
        seen = self._sampled
        self._sampled = seen + 1
        moments = self._moments
        inner[ROOT] = [ns, calls]  # the clone's own moments, with the nested phases'
        for name, (t, c) in inner.items():
            m = moments.get(name)
            if m is None:
                m = moments[name] = [0, 0, 0, 0]
            m[0] += 1
            m[1] += t
            m[2] += t * t
            m[3] += c
        if seen < RESERVOIR:
            slot = seen
        else:
            slot = int(self._random() * (seen + 1))
            if slot >= RESERVOIR:
                return
        kept = self._kept
        if len(kept) != len(moments):
            for name in moments:
                if name not in kept:  # a phase seen for the first time: absent before
                    kept[name] = array("q", [_ABSENT]) * min(seen, RESERVOIR)
        grow = slot == len(kept[ROOT])  # every row has the same length
        for name, row in kept.items():
            tc = inner.get(name)
            value = _ABSENT if tc is None else tc[0]
            if grow:
                row.append(value)
            else:
                row[slot] = value

    def reset(self) -> None:
        """Forget every sample."""
        with self._lock:
            del self._pending[:]
            self._sampled = 0
            self._moments.clear()
            self._kept.clear()

    @property
    def clones(self) -> int:
        """Clones recorded (sampled, and whole) since the start (or the last ``reset``)."""
        self._fold()
        with self._lock:
            return self._sampled

    def _phase_figures(self) -> tuple[int, dict[str, PhaseStats]]:
        """The clones recorded, and every phase's figures per recorded clone (a clone
        that skipped a phase counts 0 in it)."""
        self._fold()
        with self._lock:
            clones = self._sampled
            moments, kept = _copies(self._moments, self._kept)
        phases = {}
        for name, (_ran, total, squares, calls) in moments.items():
            values = kept[name]
            count = clones
            mean = total / count
            # Exact in integers, then one division.
            var = (count * squares - total * total) / (count * (count - 1)) if count > 1 else 0.0
            phases[name] = PhaseStats(
                count=count,
                sum_ns=total,
                mean_ns=mean,
                median_ns=float(statistics.median(values)),
                p95_ns=p95(values),
                host_calls=calls,
                stdev_ns=math.sqrt(max(0.0, var)),
            )
        return clones, phases

    def samples(self, phase: str) -> list[int]:
        """Kept per-clone samples of ``phase`` in ns: every one, in the order taken, up to
        ``RESERVOIR`` clones; after that, those of a uniform sample of the clones."""
        self._fold()
        with self._lock:
            return _present(self._kept.get(phase, ()))

    def per_clone_samples(self, phase: str) -> list[int]:
        """Like ``samples``, one entry per kept clone: 0 for a clone in which ``phase`` did
        not run (no handshake for a pooled event), so figures stay per clone.  Empty if the
        phase never ran."""
        self._fold()
        with self._lock:
            return _per_clone(self._kept.get(phase, ()))


# Functions of their own, called under the profile's lock: on 3.12 and 3.13 an exception
# (a Ctrl-C) at some instructions of a comprehension inlined in a ``with`` block skips the
# block's exit, which would leave the lock held and the next clone's fold waiting for it;
# one from a call does not.


def _copies(
    moments: dict[str, list[int]], kept: dict[str, array[int]]
) -> tuple[dict[str, tuple[int, ...]], dict[str, list[int]]]:
    """The moments, and each phase's kept samples sorted (a skipped phase counts 0)."""
    return (
        {name: tuple(m) for name, m in moments.items()},
        {name: sorted(max(v, 0) for v in row) for name, row in kept.items()},
    )


def _present(row: Iterable[int]) -> list[int]:
    return [v for v in row if v != _ABSENT]


def _per_clone(row: Iterable[int]) -> list[int]:
    return [max(v, 0) for v in row]
