"""The reference workload: a fixed piece of work a measuring process times beside its
batches, so the analysis can see the machine's speed state the batches' thread starts saw
(``_reference`` normalises by it; ``docs/benchmark.md``, "The reference").  It is timed as
the batches are, with the cyclic collector off (``no_gc``, which the batches use too)."""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Iterator

REFERENCE_CALLS = 100
"""System calls (``os.getppid``) in one pass of the reference workload."""
REFERENCE_LOOP = 1000
"""Iterations of the pure-Python loop in one pass of the reference workload."""
REFERENCE_PASSES = 3
"""Passes timed each time the reference is taken; their median is the figure (one pass
that an interrupt lands in does not move it)."""


def _reference_pass() -> int:
    """One pass of the reference workload: system calls and bytecodes, as a thread start
    is (about 80 µs on the machine this was written on)."""
    call = os.getppid
    for _ in range(REFERENCE_CALLS):
        call()
    x = 0
    for i in range(REFERENCE_LOOP):
        x += i & 7
    return x


def reference_ns() -> float:
    """The reference workload's time, in ns: the median of ``REFERENCE_PASSES`` passes
    with the collector off (as the batches are timed), about 0.25 ms.  Taken before a
    slice's first batch and after each of its batches, in the measuring process itself, so
    it sees the machine's speed state the batch's thread starts saw (``docs/benchmark.md``,
    "The reference")."""
    clock = time.perf_counter_ns
    times = []
    with no_gc():
        for _ in range(REFERENCE_PASSES):
            t0 = clock()
            _reference_pass()
            times.append(clock() - t0)
    return float(statistics.median(times))


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector off for the block (as ``timeit`` times), then as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
