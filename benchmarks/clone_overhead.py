"""Where a LibOS clone's time goes beyond the native floor, step by step.

Each row adds one layer to the one above it: ``Thread.start()`` alone (the floor), the
``threading.Thread`` construction as well, the PAL's ``thread_create``, ``LibOS.clone``
with the profile off, and with it on (sgx host, pooled raw events, so no host channel
is created).  Batches of 100 threads, interleaved in rounds; medians.

    python benchmarks/clone_overhead.py [--rounds N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.table import Table

from pylibos.libos import LibOS
from pylibos.pal import open_host


def _noop() -> None:
    return None


class _Joinable(Protocol):
    def join(self, timeout: float | None = None, /) -> object: ...


def _batches(make: Callable[[list[int]], _Joinable], threads: int, out: list[int]) -> None:
    for _ in range(max(1, threads // 100)):
        batch = [make(out) for _ in range(100)]
        for t in batch:
            t.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--threads", type=int, default=1000, help="threads per step per round")
    args = parser.parse_args()
    clock = time.perf_counter_ns
    host_off, host_on = open_host("sgx"), open_host("sgx")
    off = LibOS(host_off, "raw", pool=True, profile=False)
    on = LibOS(host_on, "raw", pool=True, profile=True)

    def start_only(out: list[int]) -> _Joinable:
        t = threading.Thread(target=_noop, daemon=True)
        t0 = clock()
        t.start()
        out.append(clock() - t0)
        return t

    def timed(fn: Callable[[], _Joinable]) -> Callable[[list[int]], _Joinable]:
        def make(out: list[int]) -> _Joinable:
            t0 = clock()
            t = fn()
            out.append(clock() - t0)
            return t

        return make

    def construct_and_start() -> _Joinable:
        t = threading.Thread(target=_noop, daemon=True)
        t.start()
        return t

    steps: list[tuple[str, Callable[[list[int]], _Joinable]]] = [
        ("Thread.start() (native floor)", start_only),
        ("+ Thread construction", timed(construct_and_start)),
        ("PAL thread_create", timed(lambda: host_off.thread_create(_noop))),
        ("LibOS clone, profile off", timed(lambda: off.clone(_noop))),
        ("LibOS clone, profile on", timed(lambda: on.clone(_noop))),
    ]
    samples: dict[str, list[int]] = {name: [] for name, _ in steps}
    try:
        for _, make in steps:
            _batches(make, 100, [])  # warm-up
        for _ in range(args.rounds):
            for name, make in steps:
                _batches(make, args.threads, samples[name])
    finally:
        for lib, host in ((off, host_off), (on, host_on)):
            lib.shutdown()
            host.shutdown()
    table = Table(title="Clone, layer by layer (medians)")
    for col in ("step", "µs", "÷ floor", "added µs"):
        table.add_column(col, justify="right")
    floor = statistics.median(samples[steps[0][0]]) / 1000
    previous = floor
    for name, _ in steps:
        med = statistics.median(samples[name]) / 1000
        table.add_row(name, f"{med:.1f}", f"{med / floor:.3f}", f"{med - previous:+.1f}")
        previous = med
    Console().print(table)


if __name__ == "__main__":
    main()
