"""Uncertainty of a run's figures: bootstrap intervals (stability warnings and the SGX
projection are in ``_warnings``).

Every timed figure a run reports is a statistic of its *batches*: each batch gives one median
and one mean per clone for each phase (``batches_ns`` in the JSON).  A figure's 95% interval
is a percentile bootstrap in three stages, replica slots, rounds, batches (``_resample``
draws them), so it holds what changes from one measuring process to the next (format 10:
``--processes`` per configuration) and from one slice of the run to the next, not only
batch-to-batch noise.  With one process per configuration (every file before format 10)
the draw is the two-stage one, rounds then batches, exactly as before.

Every configuration at every live count ran in the same rounds, interleaved (a
configuration's live counts back to back), and the same rounds are drawn for all of them.
A slowdown that hit the slices of a round then cancels in their ratios, which is what the
interleaving is for; a slowdown of one slice does not, as it should not.  (In files
before format 6 each live count ran in rounds of its own, tens of seconds apart, and is
resampled apart, as it was measured.)  Figures of different runs are resampled
independently.

Live scaling, (start at 1,000 live ÷ at 1 live) ÷ native's, and (format 7 on) every ratio
between two configurations (start ÷ native, clone ÷ sgx/pipe) are taken where the pairing
is, round by round (``Figures.paired``): each round's quotient of its slices, measured a few
slices apart, and their trimmed mean, with a bootstrap over the rounds only (each
round's quotient already holds its batches' noise), slots then rounds as every figure.
From format 8 live scaling is taken by part (``Figures.paired_by_part``): the
configuration's quotient of its two live counts and native's, each round by round and
trimmed on its own, the figure the quotient of the two trimmed means, over the same rounds drawn.

All the figures of one configuration come from the same resamples, so a proportion such as
p3 = handshake / clone is resampled as a pair.  The distribution of a ratio is the ratio of
the distributions.  Two-stage resampling counts batch noise at both stages, so on batches
with no drift at all the intervals are conservative (about 99% hold the true value rather
than 95%): a verdict or a change is claimed only when the data bear it out.  The generator
is seeded from the figure's position, so a saved run renders the same intervals every time.

numpy does the work (it is already installed with matplotlib).  ``scipy.stats.bootstrap``
computes the same percentile interval, but one figure at a time: about 20 ms per figure
here, seconds for the few hundred figures of a default ``compare``, and 110 MB installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._schema import TIMED, Entry, IntervalJSON, RunData
from ..libos import PROPORTIONS
from ._resample import (
    RESAMPLES,
    Floats,
    choose_rounds,
    processes_of,
    resample_indices,
    round_slots,
    row_medians,
    row_sums,
)

CONFIDENCE = 0.95
TRIM = 0.2
"""Share of the rounds' figures left out at each end of a paired figure's trimmed mean
(``Figures.paired``): with 15 rounds, the 3 highest and the 3 lowest."""


@dataclass(frozen=True)
class Interval:
    """A figure and its 95% interval (``low``/``high`` are None where no interval can be
    drawn: fewer than two batches)."""

    value: float
    low: float | None = None
    high: float | None = None

    @property
    def known(self) -> bool:
        return self.low is not None and self.high is not None

    def holds(self, x: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= x <= self.high

    @property
    def width(self) -> float | None:
        """The interval's width relative to the figure (0.1: it spans 10% of the value)."""
        if self.low is None or self.high is None:
            return None
        if self.value == 0:
            return 0.0 if self.high == self.low else math.inf
        return (self.high - self.low) / abs(self.value)

    def as_json(self) -> IntervalJSON:
        return {"value": self.value, "low": self.low, "high": self.high}

    @staticmethod
    def from_json(d: IntervalJSON) -> Interval:
        return Interval(float(d["value"]), d.get("low"), d.get("high"))


def exact(value: float) -> Interval:
    """A figure with no sampling error (a count the same on every machine)."""
    return Interval(value, value, value)


def percentile_interval(value: float, dist: Floats | None) -> Interval:
    if dist is None or not len(dist) or not np.all(np.isfinite(dist)):
        return Interval(value)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(dist, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def trimmed_mean(values: Floats) -> Floats:
    """The ``TRIM`` trimmed mean along the last axis: ``floor(TRIM * n)`` values left out
    at each end (none for fewer than 5)."""
    n = values.shape[-1]
    k = int(TRIM * n)
    ordered = np.sort(values, axis=-1)
    return np.asarray(ordered[..., k : n - k].mean(axis=-1), dtype=np.float64)


@dataclass(frozen=True)
class Paired:
    """A figure drawn round by round (``Figures.paired``): its interval, the rounds it
    paired and each one's own figure."""

    interval: Interval
    rounds: list[int]
    per_round: list[float]


@dataclass(frozen=True)
class ByPart(Paired):
    """A quotient of two parts, each drawn round by round (``Figures.paired_by_part``):
    ``per_round`` holds each round's whole quotient, ``own`` and ``base`` each part's."""

    own: list[float]
    base: list[float]


@dataclass
class _Drawn:
    values: dict[str, float]
    dists: dict[str, Floats]


class Figures:
    """The figures of one run with their bootstrap distributions, drawn once per entry.

    Keys: ``PHASE.median`` (median over batches of each batch's median clone),
    ``PHASE.mean`` (mean per clone) and ``p1``, ``p2``, ``p3`` (the seed's proportions,
    ratios of means).
    """

    def __init__(self, data: RunData, *, seed: int = 0, resamples: int = RESAMPLES) -> None:
        self.data = data
        self._seed = seed
        self._resamples = resamples
        self._drawn: dict[int, _Drawn] = {}
        self._chosen: dict[int, npt.NDArray[np.intp]] = {}
        self.processes = processes_of(data)
        """Measuring processes per configuration and live count (1 before format 10)."""

    def over(self, data: RunData) -> Figures:
        """Figures of ``data`` (the same run's entries in the same places, normalised:
        ``_reference``) drawn with this one's seed and resamples, so the same rounds."""
        return Figures(data, seed=self._seed, resamples=self._resamples)

    def _draw(self, entry: Entry) -> _Drawn:
        key = id(entry)
        drawn = self._drawn.get(key)
        if drawn is None:
            drawn = self._drawn[key] = self._compute(entry)
        return drawn

    def _compute(self, entry: Entry) -> _Drawn:
        position = next(i for i, e in enumerate(self.data["configs"]) if e is entry)
        rounds = list(entry["batch_rounds"])
        batches = entry["batches_ns"]
        columns: dict[str, Floats] = {}
        for phase in TIMED:
            per = batches.get(phase)
            if per is None:
                continue
            for stat in ("median", "mean"):
                columns[f"{phase}.{stat}"] = np.asarray(per[stat], dtype=np.float64)
        n = min([len(rounds), *(len(c) for c in columns.values())])
        values: dict[str, float] = {}
        dists: dict[str, Floats] = {}
        if n == 0:
            return _Drawn(values, dists)
        for k, c in columns.items():
            columns[k] = c[:n]
            reduce = np.median if k.endswith(".median") else np.mean
            values[k] = float(reduce(columns[k]))
        for name, (part, whole) in PROPORTIONS.items():
            if f"{part}.mean" in columns and f"{whole}.mean" in columns:
                total = float(columns[f"{whole}.mean"].sum())
                if total > 0:
                    values[name] = float(columns[f"{part}.mean"].sum()) / total
        if n < 2:
            return _Drawn(values, dists)
        rng = np.random.default_rng([self._seed, position])
        idx = resample_indices(
            rounds[:n], rng, self._resamples, self._rounds_for(entry), self.processes
        )
        counts = (idx >= 0).sum(axis=1)
        for k, c in columns.items():
            dists[k] = row_medians(c, idx) if k.endswith(".median") else row_sums(c, idx) / counts
        for name, (part, whole) in PROPORTIONS.items():
            if name in values:
                wholes = row_sums(columns[f"{whole}.mean"], idx)
                parts = row_sums(columns[f"{part}.mean"], idx)
                with np.errstate(divide="ignore", invalid="ignore"):
                    dists[name] = parts / wholes
        return _Drawn(values, dists)

    def _rounds_for(self, entry: Entry) -> npt.NDArray[np.intp]:
        """The rounds drawn for every configuration measured in the same rounds as
        ``entry``: the same draw for all of them, so slices measured side by side are
        resampled together.  Since format 6 that is the whole run; before, each live
        count ran in rounds of its own."""
        together = bool(self.data["settings"].get("live_in_same_rounds"))
        group = -1 if together else int(entry["live"])
        chosen = self._chosen.get(group)
        if chosen is None:
            # Every round any of them ran, by number: an entry that ran them all shares
            # the draw (one that did not draws its own, ``resample_indices``), and each
            # round's slot follows from its number, not its place.
            numbers = sorted(
                {int(r) for e in self.data["configs"] if together or e["live"] == group
                 for r in e["batch_rounds"]}
            ) or [0]  # fmt: skip
            n_rounds = len(numbers)
            key = [self._seed, 1 << 21] if together else [self._seed, 1 << 20, group]
            rng = np.random.default_rng(key)
            slots = round_slots(numbers, self.processes)
            chosen = self._chosen[group] = choose_rounds(n_rounds, rng, self._resamples, slots)
        return chosen

    def round_figures(self, entry: Entry, key: str) -> dict[int, float]:
        """Each round's figure of ``entry``: the median of that round's batches' ``key``
        (``PHASE.median``) figures."""
        phase, _, stat = key.partition(".")
        per = entry["batches_ns"].get(phase)
        if per is None or stat not in ("median", "mean"):
            return {}
        values = per["median"] if stat == "median" else per["mean"]
        rounds = entry["batch_rounds"][: len(values)]
        by: dict[int, list[float]] = {}
        for r, v in zip(rounds, values, strict=False):
            by.setdefault(int(r), []).append(float(v))
        return {r: float(np.median(v)) for r, v in sorted(by.items())}

    def paired(
        self, top: Sequence[Entry], bottom: Sequence[Entry], key: str = "start.median"
    ) -> Paired | None:
        """The product of ``top``'s figures over ``bottom``'s, round by round: each round's
        quotient of the entries' figures in that round (``round_figures``), and their
        ``TRIM`` trimmed mean on a log scale, with its interval over the rounds drawn for
        the run (the same rounds as every other figure).  For entries measured in the same
        rounds, back to back: what a round's slices share cancels in its quotient, and a
        round another process crowded is among the ends left out.  None when the entries
        share no round."""
        figures = [self.round_figures(e, key) for e in (*top, *bottom)]
        common = sorted(set.intersection(*(set(f) for f in figures))) if figures else []
        if not common or any(f[r] <= 0 for f in figures for r in common):
            return None
        logs = np.zeros(len(common))
        for i, f in enumerate(figures):
            sign = 1.0 if i < len(top) else -1.0
            logs += sign * np.log([f[r] for r in common])
        per_round = [float(v) for v in np.exp(logs)]
        value = float(np.exp(trimmed_mean(logs)))
        if len(common) < 2:
            return Paired(Interval(value), common, per_round)
        chosen = self._rounds_for(top[0]) if top else None
        every = sorted({int(r) for e in (*top, *bottom) for r in e["batch_rounds"]})
        if chosen is None or common != every or chosen.shape[1] != len(common):
            configs = self.data["configs"]
            positions = [next(i for i, c in enumerate(configs) if c is e) for e in (*top, *bottom)]
            rng = np.random.default_rng([self._seed, 1 << 22, *positions])
            slots = round_slots(common, self.processes)
            chosen = choose_rounds(len(common), rng, self._resamples, slots)
        dist = np.exp(trimmed_mean(logs[chosen]))
        return Paired(percentile_interval(value, dist), common, per_round)

    def paired_by_part(
        self, own: tuple[Entry, Entry], base: tuple[Entry, Entry], key: str = "start.median"
    ) -> ByPart | None:
        """``own``'s quotient (top ÷ bottom) over ``base``'s, each part taken round by round
        on its own: each round's quotient of a part's two slices, measured back to back, and
        the part's ``TRIM`` trimmed mean of them on a log scale; the figure is the quotient
        of the two trimmed means, its interval a bootstrap over the rounds drawn for the run
        (the same rounds for both parts, so whatever they share still cancels).

        For live scaling, a configuration's start at 1,000 live over at 1 live, over
        native's: a configuration's two slices move together (their round medians'
        correlation is 0.47 at the median of 16 measured runs) and their quotient pairs
        them, but the two parts' quotients do not (median correlation 0.04): pairing the
        parts gains nothing, and trimming whole rounds would leave out a configuration's
        good round with a crowded slice of native's.  Each part trims its own outliers.
        None when the four entries share no round."""
        tops = self.round_figures(own[0], key), self.round_figures(base[0], key)
        bottoms = self.round_figures(own[1], key), self.round_figures(base[1], key)
        every = (*tops, *bottoms)
        common = sorted(set.intersection(*(set(f) for f in every)))
        if not common or any(f[r] <= 0 for f in every for r in common):
            return None
        parts = [
            np.log([top[r] for r in common]) - np.log([bottom[r] for r in common])
            for top, bottom in zip(tops, bottoms, strict=True)
        ]
        own_logs, base_logs = parts
        value = float(np.exp(trimmed_mean(own_logs) - trimmed_mean(base_logs)))
        per_round = [float(v) for v in np.exp(own_logs - base_logs)]
        own_rounds = [float(v) for v in np.exp(own_logs)]
        base_rounds = [float(v) for v in np.exp(base_logs)]
        if len(common) < 2:
            return ByPart(Interval(value), common, per_round, own_rounds, base_rounds)
        chosen = self._rounds_for(own[0])
        entries = (*own, *base)
        every_round = sorted({int(r) for e in entries for r in e["batch_rounds"]})
        if common != every_round or chosen.shape[1] != len(common):
            configs = self.data["configs"]
            positions = [next(i for i, c in enumerate(configs) if c is e) for e in entries]
            rng = np.random.default_rng([self._seed, 1 << 23, *positions])
            slots = round_slots(common, self.processes)
            chosen = choose_rounds(len(common), rng, self._resamples, slots)
        dist = np.exp(trimmed_mean(own_logs[chosen]) - trimmed_mean(base_logs[chosen]))
        return ByPart(percentile_interval(value, dist), common, per_round, own_rounds, base_rounds)

    def value(self, entry: Entry, key: str) -> float | None:
        return self._draw(entry).values.get(key)

    def dist(self, entry: Entry, key: str) -> Floats | None:
        return self._draw(entry).dists.get(key)

    def interval(self, entry: Entry, key: str) -> Interval | None:
        value = self.value(entry, key)
        if value is None:
            return None
        return percentile_interval(value, self.dist(entry, key))

    def ratio(self, top: tuple[Entry, str], bottom: tuple[Entry, str]) -> Interval | None:
        """``top ÷ bottom`` with the interval of the ratio of their distributions."""
        return ratio_of(self, top, self, bottom)


Term = tuple[Figures, Entry, str]


def quotient(top: Sequence[Term], bottom: Sequence[Term]) -> Interval | None:
    """The product of the ``top`` figures over the product of the ``bottom`` ones, with the
    interval of the same expression over their bootstrap distributions (a ratio of two
    configurations; a ratio of ratios for scaling held against native's)."""
    value = 1.0
    dist: Floats | None = np.ones(1)
    for terms, sign in ((top, 1), (bottom, -1)):
        for figures, entry, key in terms:
            v = figures.value(entry, key)
            if v is None or (sign < 0 and not v):
                return None
            value = value * v if sign > 0 else value / v
            d = figures.dist(entry, key)
            if d is None or (sign < 0 and np.any(d <= 0)):
                dist = None
            elif dist is not None:
                dist = dist * d if sign > 0 else dist / d
    return percentile_interval(value, dist)


def ratio_of(
    ftop: Figures, top: tuple[Entry, str], fbottom: Figures, bottom: tuple[Entry, str]
) -> Interval | None:
    return quotient([(ftop, *top)], [(fbottom, *bottom)])
