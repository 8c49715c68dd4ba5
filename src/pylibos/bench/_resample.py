"""Which batches a bootstrap resample of a run draws, and reductions over them.

A resample is drawn in two stages, rounds then batches: every round's place is filled with
a round drawn with replacement, and that round's place gets as many batches as the round
had, drawn with replacement from it.  So a resample holds what changes from one slice of
the run to the next (another process waking up for a second), not only batch-to-batch
noise: on a shared machine that is most of the noise, and it is what differs between two
runs.  A resample is a row of batch indices; since rounds hold different numbers of
batches, rows differ in length, and the places a row leaves empty are -1 (``row_medians``
and ``row_sums`` leave them out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

RESAMPLES = 2000
"""Enough that the interval's ends move by well under a tenth of its width from one seed to
the next; a default ``compare`` resamples every figure in well under a second."""

Floats = npt.NDArray[np.float64]


def choose_rounds(n_rounds: int, rng: np.random.Generator, resamples: int) -> npt.NDArray[np.intp]:
    """For each resample, which round fills each round's slot (drawn with replacement)."""
    return rng.integers(0, n_rounds, size=(resamples, n_rounds))


def resample_indices(
    rounds: Sequence[int],
    rng: np.random.Generator,
    resamples: int = RESAMPLES,
    chosen: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.intp]:
    """A ``resamples × m`` matrix of batch indices, in two stages: each round's slot is
    filled by a round drawn with replacement (``chosen``, shared by the configurations
    measured in the same rounds, or drawn here), with as many batches as *that* round
    had, drawn with replacement from it.  Rounds hold different numbers of batches (a
    slice lasts a fixed time, so a slow round holds fewer), so resamples differ in
    length: each slot has room for the largest round, and the room a round leaves is -1.

    (Taking as many batches as the slot's own round had would give a slow round that
    fills a fast round's slot more weight than it has in the run: the resamples would be
    slower than the run, and the intervals' upper ends too high.)"""
    order = np.asarray(rounds)
    strata = [np.flatnonzero(order == r) for r in np.unique(order)]
    lens = np.array([len(s) for s in strata], dtype=np.intp)
    flat = np.concatenate(strata)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.intp)
    if chosen is None or chosen.shape != (resamples, len(strata)):
        chosen = choose_rounds(len(strata), rng, resamples)
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
