"""Which batches a bootstrap resample of a run draws, and reductions over them.

A resample is drawn in three stages, replica slots, rounds, batches.  From format 10 each
configuration at each live count is measured in ``K`` processes (``--processes``), and
round ``r`` is measured by every configuration's replica ``round_slots`` gives (``r mod
K``, shifted by one every ``K`` rounds for an even ``K``): its *slot*.  Each
slot's place is filled with a slot drawn with replacement (``choose_rounds``), each of
the place's rounds with a round drawn with replacement from the drawn slot, and that
round's place gets as many batches as the round had, drawn with replacement from it
(``resample_indices``).  So a resample holds what changes from one measuring process to
the next (its hash seed, its memory layout, where its threads' stacks land: a level each
process keeps for the whole run), what changes from one slice of the run to the next
(another process waking up for a second), and batch-to-batch noise.  With one process
per configuration (``K`` = 1, every file before format 10) the first stage has one slot
to draw and the draw is exactly the two-stage one of before, random numbers and all.

A resample is a row of batch indices; since rounds hold different numbers of
batches, rows differ in length, and the places a row leaves empty are -1 (``row_medians``
and ``row_sums`` leave them out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .._schema import RunData

RESAMPLES = 2000
"""Enough that the interval's ends move by well under a tenth of its width from one seed to
the next; a default ``compare`` resamples every figure in well under a second."""

Floats = npt.NDArray[np.float64]


REPLICA_OF_ROUND = "round % processes; (round + round // processes) % processes for an even number"
"""How a round's replica slot follows from its number (``settings.replica_of_round``)."""


def processes_of(data: RunData) -> int:
    """A run's measuring processes per configuration and live count (1 before format 10)."""
    return max(1, int(data["settings"].get("processes") or 1))


def round_slots(rounds: Sequence[int], processes: int) -> npt.NDArray[np.intp]:
    """The replica slot of each round (``REPLICA_OF_ROUND``; ``processes`` is
    ``settings.processes``, 1 before format 10): every ``processes`` rounds running use
    each slot once.  Odd rounds run the schedule backwards (``_measure.schedule``): with an
    even number of processes, ``round % processes`` would keep each replica in one order,
    its level and its place in the round one and the same; shifted by one slot every
    ``processes`` rounds, each replica runs in both orders."""
    k = max(1, int(processes))
    numbers = np.asarray(rounds, dtype=np.intp)
    return (numbers + numbers // k) % k if k % 2 == 0 else numbers % k


def choose_rounds(
    n_rounds: int,
    rng: np.random.Generator,
    resamples: int,
    slots: npt.ArrayLike | None = None,
) -> npt.NDArray[np.intp]:
    """For each resample, which round fills each round's place (a ``resamples ×
    n_rounds`` matrix of indices into the rounds, in order).

    ``slots`` gives each round's replica slot (``round_slots``).  With one slot (or none
    given) every place is filled with a round drawn with replacement from all of them.
    With several, in two stages: each slot's places are filled from one slot drawn with
    replacement (the same drawn slot for all its places), each place with a round drawn
    with replacement from that slot's rounds.  A place keeps its own slot's number of
    places whichever slot fills it (slots differ by one round at most), so
    every resample has ``n_rounds`` rounds."""
    groups = None if slots is None else np.asarray(slots, dtype=np.intp)
    if groups is None or len(np.unique(groups)) < 2:
        return rng.integers(0, n_rounds, size=(resamples, n_rounds))
    if len(groups) != n_rounds:
        raise ValueError(f"{len(groups)} slots for {n_rounds} rounds")
    members = [np.flatnonzero(groups == s) for s in np.unique(groups)]
    sizes = np.array([len(m) for m in members], dtype=np.intp)
    flat = np.concatenate(members)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    drawn = rng.integers(0, len(members), size=(resamples, len(members)))
    out = np.empty((resamples, n_rounds), dtype=np.intp)
    for place, own in enumerate(members):
        fill = drawn[:, place]
        picks = (rng.random((resamples, len(own))) * sizes[fill][:, None]).astype(np.intp)
        out[:, own] = flat[offsets[fill][:, None] + picks]
    return out


def resample_indices(
    rounds: Sequence[int],
    rng: np.random.Generator,
    resamples: int = RESAMPLES,
    chosen: npt.NDArray[np.intp] | None = None,
    processes: int = 1,
) -> npt.NDArray[np.intp]:
    """A ``resamples × m`` matrix of batch indices, in two stages (three with
    ``processes`` > 1): each round's place is filled by a round drawn with replacement
    (``chosen``, shared by the configurations measured in the same rounds, or drawn
    here, replica slot then round: ``choose_rounds``), with as many batches as *that*
    round had, drawn with replacement from it.  Rounds hold different numbers of batches
    (a slice lasts a fixed time, so a slow round holds fewer), so resamples differ in
    length: each place has room for the largest round, and the room a round leaves is -1.

    (Taking as many batches as the place's own round had would give a slow round that
    fills a fast round's place more weight than it has in the run: the resamples would be
    slower than the run, and the intervals' upper ends too high.)"""
    order = np.asarray(rounds)
    strata = [np.flatnonzero(order == r) for r in np.unique(order)]
    lens = np.array([len(s) for s in strata], dtype=np.intp)
    flat = np.concatenate(strata)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.intp)
    if chosen is None or chosen.shape != (resamples, len(strata)):
        present = [int(r) for r in np.unique(order)]
        chosen = choose_rounds(len(strata), rng, resamples, round_slots(present, processes))
    room = int(lens.max())
    slots = []
    for k in range(len(strata)):
        fill = chosen[:, k]
        picks = (rng.random((resamples, room)) * lens[fill][:, None]).astype(np.intp)
        slot = flat[offsets[fill][:, None] + picks]
        slot[np.arange(room)[None, :] >= lens[fill][:, None]] = -1
        slots.append(slot)
    return np.concatenate(slots, axis=1)


def row_medians(values: Floats, idx: npt.NDArray[np.intp]) -> Floats:
    """The median of each row of ``values[idx]``, leaving out the -1 places."""
    drawn = np.where(idx >= 0, values[idx], np.inf)
    drawn.sort(axis=1)
    n = (idx >= 0).sum(axis=1)
    rows = np.arange(len(idx))
    return np.asarray((drawn[rows, (n - 1) // 2] + drawn[rows, n // 2]) / 2, dtype=np.float64)


def row_sums(values: Floats, idx: npt.NDArray[np.intp]) -> Floats:
    """The sum of each row of ``values[idx]``, leaving out the -1 places."""
    return np.asarray(np.where(idx >= 0, values[idx], 0.0).sum(axis=1), dtype=np.float64)
