"""Soak: many clones in a row, with what the process holds sampled at ten points.

For each configuration (default: 100,000 clones on sgx/raw and 5,000 on sgx/pipe, the
profile on, as a program would run), clones go in batches, each batch joined; after each
tenth of the clones the process's descriptors, OS threads, Python threads, _DummyThreads,
RSS, the LibOS's open handles, table entries and thread slots, and the host calls per
clone over that tenth are taken.  A long-running program must see all of them flat:
the verdict line checks RSS growth between the second and the last tenth (at most
2 MiB) and that nothing else grew.

    python benchmarks/soak.py [--raw N] [--pipe N] [--batch N] [--out DIR]

``--out DIR`` writes ``soak.json`` and ``soak.md`` there (the committed run lives in
``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pylibos.bench._measure import ensure_fd_room, machine, rss_kib
from pylibos.libos import LibOS
from pylibos.pal import SgxHost, open_host

FORMAT_VERSION = 1
# Format history:
#   1: first version.

POINTS = 10
RSS_GROWTH_LIMIT_KIB = 2048
_JOIN_S = 30.0


def _noop() -> None:
    return None


def _dummies() -> int:
    return sum(isinstance(t, threading._DummyThread) for t in threading.enumerate())


def _sample(libos: LibOS, clones: int, calls: int, tenth: int) -> dict[str, Any]:
    gc.collect()
    host = libos.host
    return {
        "clones": clones,
        "fds": len(os.listdir("/proc/self/fd")),
        "os_threads": len(os.listdir("/proc/self/task")),
        "py_threads": threading.active_count(),
        "dummies": _dummies(),
        "rss_kib": rss_kib(),
        "open_handles": len(host.open_handles()),
        "table": len(libos.threads()),
        "slots": host.threads_in_use if isinstance(host, SgxHost) else None,
        "host_calls_per_clone": calls / tenth if tenth else 0.0,
    }


def soak(events: str, clones: int, batch: int, progress: Console | None) -> dict[str, Any]:
    """Clone ``clones`` threads on sgx/``events`` in batches of ``batch``; ten samples."""
    host = open_host("sgx", max_threads=max(256, 2 * batch + 16))
    libos = LibOS(host, events)
    points: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        done = 0
        bounds = [clones * (k + 1) // POINTS for k in range(POINTS)]
        for bound in bounds:
            calls0, tenth = host.calls_total, bound - done
            while done < bound:
                n = min(batch, bound - done)
                threads = [libos.clone(_noop) for _ in range(n)]
                for t in threads:
                    if not t.join(_JOIN_S):
                        raise RuntimeError(f"sgx/{events}: a thread did not end in {_JOIN_S} s")
                done += n
            points.append(_sample(libos, done, host.calls_total - calls0, tenth))
            if progress is not None:
                progress.print(f"sgx/{events}: {done:,} clones, RSS {points[-1]['rss_kib']} KiB")
        profile = libos.profile.statistics().phases.get("clone")
    finally:
        libos.shutdown()
        host.shutdown()
    elapsed = time.perf_counter() - started
    return {
        "config": f"sgx/{events}",
        "clones": clones,
        "batch": batch,
        "seconds": elapsed,
        "clone_median_us": None if profile is None else profile.median_ns / 1000,
        "points": points,
        "verdict": verdict(points),
    }


def verdict(points: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS growth from the second to the last tenth, and whether anything else grew."""
    second, last = points[min(1, len(points) - 1)], points[-1]
    growth = last["rss_kib"] - second["rss_kib"]
    flat = {
        key: last[key] == points[0][key]
        for key in ("fds", "os_threads", "py_threads", "dummies", "open_handles", "table", "slots")
    }
    return {
        "rss_growth_kib": growth,
        "rss_ok": growth <= RSS_GROWTH_LIMIT_KIB,
        "flat": flat,
        "ok": growth <= RSS_GROWTH_LIMIT_KIB and all(flat.values()),
    }


_COLUMNS = [
    ("clones", "clones", "{:,}"),
    ("fds", "fds", "{}"),
    ("os_threads", "OS threads", "{}"),
    ("py_threads", "Python threads", "{}"),
    ("dummies", "_DummyThreads", "{}"),
    ("rss_kib", "RSS KiB", "{:,}"),
    ("open_handles", "open handles", "{}"),
    ("table", "table entries", "{}"),
    ("slots", "slots taken", "{}"),
    ("host_calls_per_clone", "host calls / clone", "{:.2f}"),
]


def _verdict_line(run: dict[str, Any]) -> str:
    v = run["verdict"]
    grown = [k for k, ok in v["flat"].items() if not ok]
    return (
        f"{run['config']}: {run['clones']:,} clones in {run['seconds']:.0f} s, "
        f"median clone {run['clone_median_us']:.1f} µs; RSS growth 2nd→last tenth "
        f"{v['rss_growth_kib']:+,} KiB (limit {RSS_GROWTH_LIMIT_KIB:,}): "
        f"{'ok' if v['rss_ok'] else 'TOO MUCH'}; "
        + ("everything else flat" if not grown else f"grew: {', '.join(grown)}")
    )


def render_table(run: dict[str, Any]) -> Table:
    table = Table(title=f"Soak: {run['config']}, {run['clones']:,} clones")
    for _, title, _ in _COLUMNS:
        table.add_column(title, justify="right")
    for point in run["points"]:
        table.add_row(
            *("-" if point[key] is None else fmt.format(point[key]) for key, _, fmt in _COLUMNS)
        )
    table.caption = _verdict_line(run)
    return table


def render_markdown(runs: list[dict[str, Any]]) -> str:
    lines = ["# Soak", ""]
    for run in runs:
        lines += [f"## {run['config']}, {run['clones']:,} clones", ""]
        lines.append("| " + " | ".join(title for _, title, _ in _COLUMNS) + " |")
        lines.append("|" + "---|" * len(_COLUMNS))
        for point in run["points"]:
            cells = ("-" if point[k] is None else fmt.format(point[k]) for k, _, fmt in _COLUMNS)
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", _verdict_line(run), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=int, default=100_000, help="clones on sgx/raw (100000)")
    parser.add_argument("--pipe", type=int, default=5_000, help="clones on sgx/pipe (5000)")
    parser.add_argument("--batch", type=int, default=100, help="threads per batch (100)")
    parser.add_argument("--out", type=Path, help="write soak.json and soak.md in this directory")
    args = parser.parse_args()
    if args.raw < 0 or args.pipe < 0 or args.raw + args.pipe == 0:
        parser.error("need --raw and --pipe >= 0, not both 0")
    for name in ("raw", "pipe"):
        n = getattr(args, name)
        if n and n < POINTS:
            parser.error(f"--{name} must be 0 or at least {POINTS} (one sample per tenth)")
    if not 1 <= args.batch <= 10_000:
        parser.error("--batch must be in [1, 10000]")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"ERROR: --out {args.out} exists and is not a directory", file=sys.stderr)
        return 1
    ensure_fd_room(3 * args.batch + 256)
    console = Console(width=140)
    runs = []
    try:
        for events, clones in (("raw", args.raw), ("pipe", args.pipe)):
            if clones:
                runs.append(soak(events, clones, args.batch, console))
    except KeyboardInterrupt:
        print("ERROR: interrupted; nothing written", file=sys.stderr)
        return 1
    for run in runs:
        console.print(render_table(run))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        data = {"version": FORMAT_VERSION, "machine": machine(), "runs": runs}
        (args.out / "soak.json").write_text(json.dumps(data, indent=2) + "\n")
        (args.out / "soak.md").write_text(render_markdown(runs))
        console.print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.md'}")
    return 0 if all(run["verdict"]["ok"] for run in runs) else 2


if __name__ == "__main__":
    sys.exit(main())
