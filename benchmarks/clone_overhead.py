"""What the LibOS adds to the application's ``threading.Thread(target=f).start()``, part
by part.

Each step times the same statement: natively, then with the LibOS installed under
``threading`` (``pylibos.libos.install``) on an sgx host with pooled raw events (so no host
channel is made per thread), first with the LibOS profile off, then on, then on an sgx host
with eventfd events.  The profile-on steps also give the LibOS's own phases inside the
start.  Batches of 100 threads, each joined; steps interleaved in rounds; medians.

    python benchmarks/clone_overhead.py [--rounds N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from pylibos.libos import LibOS, install
from pylibos.pal import open_host


def _noop() -> None:
    return None


def _batches(threads: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in range(max(1, threads // 100)):
        batch = []
        for _ in range(100):
            t0 = clock()
            t = threading.Thread(target=_noop)
            t.start()
            out.append(clock() - t0)
            batch.append(t)
        for t in batch:
            t.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--threads", type=int, default=1000, help="threads per step per round")
    args = parser.parse_args()
    hosts = [open_host("sgx"), open_host("sgx"), open_host("sgx")]
    off = LibOS(hosts[0], "raw", pool=True, profile=False)
    on = LibOS(hosts[1], "raw", pool=True, profile=True)
    efd = LibOS(hosts[2], "eventfd", pool=False, profile=True)
    phases: dict[str, dict[str, list[int]]] = {}

    def hooked(libos: LibOS | None) -> Callable[[int, list[int]], None]:
        def run(threads: int, out: list[int]) -> None:
            if libos is None:
                _batches(threads, out)
                return
            with install(libos):
                _batches(threads, out)

        return run

    steps: list[tuple[str, LibOS | None]] = [
        ("native Thread.start()", None),
        ("LibOS sgx/raw+pool, profile off", off),
        ("LibOS sgx/raw+pool, profile on", on),
        ("LibOS sgx/eventfd, profile on", efd),
    ]
    samples: dict[str, list[int]] = {name: [] for name, _ in steps}
    try:
        for _, libos in steps:
            hooked(libos)(100, [])  # warm-up (fills the pool)
        for libos in (on, efd):
            libos.profile.reset()
        for _ in range(args.rounds):
            for name, libos in steps:
                hooked(libos)(args.threads, samples[name])
        for name, libos in steps:
            if libos is not None and libos.profile.enabled:
                phases[name] = {
                    p: libos.profile.samples(p)
                    for p in ("clone", "get_new_thread", "create_pollable_event")
                }
    finally:
        for libos, host in zip((off, on, efd), hosts, strict=True):
            libos.shutdown()
            host.shutdown()
    table = Table(title="threading.Thread(target=f).start(), native and under the LibOS (medians)")
    for col in ("step", "µs", "÷ native", "added µs"):
        table.add_column(col, justify="right")
    floor = statistics.median(samples[steps[0][0]]) / 1000
    previous = floor
    for name, _ in steps:
        med = statistics.median(samples[name]) / 1000
        table.add_row(name, f"{med:.1f}", f"{med / floor:.3f}", f"{med - previous:+.1f}")
        previous = med
    Console().print(table)
    inner = Table(title="Inside the start: the LibOS's phases (medians, µs)")
    for col in ("step", "start", "clone", "get_new_thread", "create_pollable_event",
                "PAL thread create", "start - clone"):  # fmt: skip
        inner.add_column(col, justify="right")
    for name, per in phases.items():
        ph = {p: statistics.median(v) / 1000 if v else 0.0 for p, v in per.items()}
        start = statistics.median(samples[name]) / 1000
        inner.add_row(
            name,
            f"{start:.1f}",
            f"{ph['clone']:.1f}",
            f"{ph['get_new_thread']:.1f}",
            f"{ph['create_pollable_event']:.1f}",
            f"{ph['clone'] - ph['get_new_thread']:.1f}",
            f"{start - ph['clone']:.1f}",
        )
    Console().print(inner)


if __name__ == "__main__":
    main()
