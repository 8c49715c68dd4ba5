"""Per event kind on sgx: median clone, create_pollable_event and host calls per clone,
and the cost of the phase profile itself (clone with the profile on and off, interleaved).

    python benchmarks/libos_clone.py [--threads N] [--batch N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from pylibos.libos import LibOS
from pylibos.pal import open_host


def _noop() -> None:
    return None


def _clone_batch(libos: LibOS, batch: int, out: list[int]) -> None:
    threads = []
    for _ in range(batch):
        t0 = time.perf_counter_ns()
        threads.append(libos.clone(_noop))
        out.append(time.perf_counter_ns() - t0)
    for t in threads:
        if not t.join(30):
            raise RuntimeError("a thread did not end within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2000, help="threads per kind (2000)")
    parser.add_argument("--batch", type=int, default=100, help="threads per batch (100)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    args = parser.parse_args()
    if args.threads < args.batch or args.batch < 1 or args.rounds < 1:
        parser.error("need --threads >= --batch >= 1 and --rounds >= 1")

    kinds = [("pipe", False), ("raw", False), ("eventfd", False), ("raw", True)]
    table = Table(title="LibOS clone on sgx, per event kind (medians)")
    for col in ("events", "clone µs", "create_pollable_event µs", "host calls / clone",
                "clone µs, profile off", "profile cost µs / clone"):  # fmt: skip
        table.add_column(col, justify="right")
    per_round = max(1, args.threads // args.batch // args.rounds)
    for kind, pool in kinds:
        on_host, off_host = open_host("sgx"), open_host("sgx")
        on = LibOS(on_host, kind, pool)
        off = LibOS(off_host, kind, pool, profile=False)
        try:
            for lib in (on, off):
                _clone_batch(lib, args.batch, [])  # warm-up
            on.profile.reset()
            calls0 = on_host.calls_total
            timed_on: list[int] = []
            timed_off: list[int] = []
            for _ in range(args.rounds):
                for _ in range(per_round):
                    _clone_batch(on, args.batch, timed_on)
                for _ in range(per_round):
                    _clone_batch(off, args.batch, timed_off)
            stats = on.profile.statistics()
            clones = stats.phases["clone"].count
            cpe = stats.phases["create_pollable_event"]
            med_on = statistics.median(timed_on) / 1000
            med_off = statistics.median(timed_off) / 1000
            table.add_row(
                f"{kind}{'+pool' if pool else ''}",
                f"{stats.phases['clone'].median_ns / 1000:.1f}",
                f"{cpe.median_ns / 1000:.1f}",
                f"{(on_host.calls_total - calls0) / clones:.2f}",
                f"{med_off:.1f}",
                f"{med_on - med_off:+.1f}",
            )
        finally:
            for lib, host in ((on, on_host), (off, off_host)):
                lib.shutdown()
                host.shutdown()
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
