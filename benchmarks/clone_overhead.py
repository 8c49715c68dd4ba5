"""What the LibOS adds to the application's ``threading.Thread(target=f).start()``, part
by part.

Each step times the same statement: natively, then with the LibOS installed under
``threading`` (``pylibos.libos.install``) on an sgx host with pooled raw events (so no host
channel is made per thread), first with the LibOS profile off, then on, then on an sgx host
with eventfd events.  The profile-on steps also give the LibOS's own phases inside the
start.  Batches of 100 threads, each joined; steps interleaved in rounds; medians.

    python benchmarks/clone_overhead.py [--rounds N] [--threads N]

On a busy machine the times say little.  ``--instructions`` counts instead the CPU
instructions one start costs, the creator's and the new thread's together, under
valgrind's callgrind (which runs the threads one at a time): each step runs N and 4N
starts, each joined before the next, and the difference is divided by 3N, so start-up
and shutdown drop out.  Counts do not depend on the load; they leave out the time the
new thread waits for the CPU, which the native start pays as well.

    python benchmarks/clone_overhead.py --instructions [--threads N]   # about 2 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
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


# --instructions: the steps, as (name, events, pool, profile); None: native.
_COUNTED: list[tuple[str, tuple[str, bool, bool] | None]] = [
    ("native Thread.start()", None),
    ("LibOS sgx/raw+pool, profile off", ("raw", True, False)),
    ("LibOS sgx/raw+pool, profile on", ("raw", True, True)),
    ("LibOS sgx/eventfd, profile on", ("eventfd", False, True)),
]


def _count_run(step: int, starts: int) -> None:
    """The program valgrind runs: ``starts`` starts of one step, after a warm-up."""
    spec = _COUNTED[step][1]
    host = open_host("sgx")
    libos = None if spec is None else LibOS(host, spec[0], pool=spec[1], profile=spec[2])
    try:
        with contextlib.nullcontext() if libos is None else install(libos):
            warm = [threading.Thread(target=_noop) for _ in range(20)]
            for t in warm:
                t.start()
            for t in warm:
                t.join(30)
            for _ in range(starts):
                t = threading.Thread(target=_noop)
                t.start()
                t.join(30)
    finally:
        if libos is not None:
            libos.shutdown()
        host.shutdown()


def _instructions(step: int, starts: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--count", str(step), str(starts)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed: {out.stderr.strip()[-500:]}")
    return int(found.group(1))


def _count_instructions(threads: int) -> None:
    table = Table(title=f"CPU instructions per Thread.start() (callgrind, {threads} and "
                  f"{4 * threads} starts)")  # fmt: skip
    for col in ("step", "instructions", "÷ native", "added"):
        table.add_column(col, justify="right")
    floor = None
    for step, (name, _) in enumerate(_COUNTED):
        per = (_instructions(step, 4 * threads) - _instructions(step, threads)) / (3 * threads)
        floor = per if floor is None else floor
        table.add_row(name, f"{per:,.0f}", f"{per / floor:.3f}", f"{per - floor:+,.0f}")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--threads", type=int, help="threads per step per round (1000; "
                        "with --instructions, 100)")  # fmt: skip
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per start under valgrind, not time")  # fmt: skip
    parser.add_argument("--count", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count is not None:
        _count_run(*args.count)
        return
    if args.instructions:
        if shutil.which("valgrind") is None:
            sys.exit("ERROR: --instructions needs valgrind (e.g. apt-get install valgrind)")
        _count_instructions(args.threads or 100)
        return
    args.threads = args.threads or 1000
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
