"""Each figure's change between two saved runs, B ÷ A, as measured and with the machine's
drift removed.

A bootstrap inside one run sees what changes from one slice of it to the next, not what
changed between the runs: the whole machine can run a few percent faster or slower in one
run than in the other (a neighbour on the hypervisor, the host's frequency).  Native,
CPython's own thread start with no pylibos code, is measured in the same interleaved rounds
as every configuration, so its B ÷ A is the machine's drift, and (B ÷ A) ÷ native's B ÷ A at
the same live count is a figure's change with that drift removed, as benchmark suites
normalise against a baseline.  Its interval comes from the same resamples as both terms:
within a run, the figure and native are drawn from the same rounds (their pairing is kept);
the two runs are drawn independently.  What it cannot remove is drift that hits the
configurations unequally (a slowdown of Python code that CPython's thread start, mostly
the kernel's clone, does not share), and a change of native itself (another Python) is
taken for the machine's.  Where both runs timed the reference workload (format 9), the
figure's change with the reference's B ÷ A removed is drawn too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .._schema import TIMED, RunData
from ._analyse import find
from ._reference import reference_draws
from ._resample import RESAMPLES, Floats
from ._stats import Figures, Interval, percentile_interval, quotient, ratio_of

MACHINE = "native"
"""The configuration that is the machine's own speed: CPython's thread start with no
pylibos code, measured in the same interleaved rounds as every configuration."""


@dataclass(frozen=True)
class Change:
    """One figure (a configuration's phase median at a live count) in both runs.

    ``ratio`` is B ÷ A as measured.  ``drift`` is native's start B ÷ A at the same live
    count: how much faster or slower the machine itself ran in B.  ``corrected`` is
    ``ratio ÷ drift``, the figure's change with the machine's drift removed, its interval
    from the same resamples (within a run, the figure and native drawn from the same
    rounds, so whatever their slices share stays paired; the two runs drawn
    independently).  Both are None where native is not in both runs at that live count;
    native's own figures have no ``corrected`` (they are the drift)."""

    name: str
    live: int
    phase: str
    a_ns: float
    b_ns: float
    ratio: Interval
    drift: Interval | None = None
    corrected: Interval | None = None
    by_reference: Interval | None = None
    """``ratio`` ÷ the reference workload's B ÷ A (format 9 runs): the figure's change with
    the machine's drift as the reference saw it removed."""

    @property
    def machine(self) -> bool:
        """Whether this figure is the machine's own (native's start)."""
        return self.name == MACHINE

    @property
    def raw_significant(self) -> bool | None:
        """None when no interval could be drawn; else whether B ÷ A's excludes 1."""
        return excludes_one(self.ratio)

    @property
    def corrected_significant(self) -> bool | None:
        """None when no drift-corrected interval could be drawn (native's own figures,
        or native not in both runs); else whether it excludes 1."""
        return None if self.corrected is None else excludes_one(self.corrected)

    @property
    def significant(self) -> bool | None:
        """Judged with the machine's drift removed where it can be, else raw."""
        if self.corrected is not None:
            return self.corrected_significant
        return self.raw_significant


def excludes_one(iv: Interval) -> bool | None:
    """None when no interval could be drawn; else whether it excludes 1 (a change)."""
    if not iv.known:
        return None
    return not iv.holds(1.0)


NATIVE_KEY = "start.median"
"""The figure whose B ÷ A is the machine's drift: native's start median."""


def reference_drift(
    a: RunData, b: RunData, *, resamples: int = RESAMPLES
) -> tuple[Interval, Floats] | None:
    """The reference workload's B ÷ A (the runs' median slice references) with its
    interval, each run's rounds drawn independently; None unless both runs have
    references."""
    ra, rb = reference_draws(a, 0, resamples), reference_draws(b, 1, resamples)
    if ra is None or rb is None:
        return None
    dist = rb[1] / ra[1]
    return percentile_interval(rb[0] / ra[0], dist), dist


def changes(a: RunData, b: RunData, *, resamples: int = RESAMPLES) -> Iterator[Change]:
    """B ÷ A for each phase median of each configuration and live count in both runs, and
    the same with the machine's drift (native's start B ÷ A at that live count) removed,
    and (where both runs have references) with the reference workload's B ÷ A removed."""
    fa, fb = Figures(a, seed=0, resamples=resamples), Figures(b, seed=1, resamples=resamples)
    ref = reference_drift(a, b, resamples=resamples)
    for eb in b["configs"]:
        ea = find(a, eb["name"], eb["live"])
        if ea is None:
            continue
        na, nb = find(a, MACHINE, eb["live"]), find(b, MACHINE, eb["live"])
        drift = None
        if na is not None and nb is not None:
            drift = ratio_of(fb, (nb, NATIVE_KEY), fa, (na, NATIVE_KEY))
        for phase in TIMED:
            key = f"{phase}.median"
            va, vb = fa.value(ea, key), fb.value(eb, key)
            if va is None or vb is None or not va:
                continue
            r = ratio_of(fb, (eb, key), fa, (ea, key))
            assert r is not None
            corrected = None
            if drift is not None and na is not None and nb is not None and eb["name"] != MACHINE:
                corrected = quotient(
                    [(fb, eb, key), (fa, na, NATIVE_KEY)], [(fa, ea, key), (fb, nb, NATIVE_KEY)]
                )
            by_ref = None
            da, db = fa.dist(ea, key), fb.dist(eb, key)
            if ref is not None and da is not None and db is not None and np.all(da > 0):
                by_ref = percentile_interval(r.value / ref[0].value, db / da / ref[1])
            yield Change(eb["name"], eb["live"], phase, va, vb, r, drift, corrected, by_ref)
