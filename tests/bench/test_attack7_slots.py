"""The three-stage bootstrap when a replica slot is missing from every entry.

``compare --configs sgx/raw --processes 3 --rounds 6``, Ctrl-C, and the configuration's
second process does not answer in its grace: it is left out, and the run's only entry
holds rounds 0, 2, 3 and 5, measured by replica slots 0, 2, 0 and 2 (round ``r`` by slot
``r mod 3``).  The bootstrap must draw those two slots, each filling the places of its
own two rounds (as ``reference_draws`` and the paired figures do, from the rounds'
numbers).  Before 3e5eea6 the draw shared by a run's entries (``Figures._rounds_for``)
took each round's slot from its *place* (``range(n_rounds) mod K``): slots 0, 1, 2, 0,
which put rounds 0 and 5 (two different processes) in one slot and rounds 0 and 3 (one
process) in two; it now takes it from the round's number."""

from __future__ import annotations

import numpy as np

from pylibos._schema import Entry
from pylibos.bench._stats import Figures

from .test_bench_stats import entry, run_data


def _run(rounds: list[int], processes: int) -> tuple[Figures, Entry]:
    per = 3
    # Slot 0's process runs at 100 every batch, slot 2's at 200: a process level and no
    # other noise, so each resample's median tells which slots filled its places.
    values = [100.0 if r % processes == 0 else 200.0 for r in rounds for _ in range(per)]
    e = entry("sgx/raw", values)
    e["batch_rounds"] = [r for r in rounds for _ in range(per)]
    data = run_data(e, paired=True)
    data["settings"]["processes"] = processes
    data["settings"]["rounds"] = 6
    return Figures(data, resamples=4000), e


def test_a_slot_missing_from_every_entry_is_drawn_by_the_rounds_slots() -> None:
    """Two slots of two rounds each, levels 100 and 200: a resample draws one slot for
    each slot's two places, so it holds 0, 2 or 4 places at 100, and its median is 100
    (both slots drawn 0) in one resample in four, 150 in two, 200 in one, as
    ``resample_indices`` draws them from the rounds' numbers.  Drawn with slots by place
    (0, 1, 2, 0) it is 100 in about 36 in 100 and 150 in 28."""
    figures, e = _run([0, 2, 3, 5], 3)
    dist = figures.dist(e, "start.median")
    assert dist is not None
    low = float(np.mean(dist == 100.0))
    middle = float(np.mean(dist == 150.0))
    assert 0.22 < low < 0.28 and 0.46 < middle < 0.54, (low, middle)


def test_the_same_entry_with_every_slot_is_drawn_as_three_stages() -> None:
    """A guarantee that holds: the same levels with all six rounds (slot 1 at 200 too),
    where the shared draw's slots by place are the rounds' own: a resample's places at
    100 come a whole slot (two places) at a time."""
    figures, e = _run([0, 1, 2, 3, 4, 5], 3)
    dist = figures.dist(e, "start.median")
    assert dist is not None
    # Places at 100 come two at a time (a whole slot): 0, 2, 4 or 6 of 6, so the median
    # is 150 only with exactly 3 of 6, which a slot-by-slot draw never gives.
    assert not np.any(dist == 150.0)
