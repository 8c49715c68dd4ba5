"""The floor of a LibOS thread start: the least a clone can do and still do its work.

``FloorClone`` is installed under ``threading`` the way ``pylibos.libos.install`` installs
the LibOS (``threading._start_new_thread`` and ``_thread.start_new_thread`` replaced; on
3.13+ ``_start_joinable_thread`` too), and each thread start does exactly the work the
LibOS's clone path must do, and nothing more:

    a tid from a counter                    next() on an itertools.count
    an event from a pool, given back        list.pop / list.append of real raw pipes
    a thread-table entry, added and removed dict store / pop
    a thread slot, taken and given back     list.pop / list.append
    the host thread recorded, one host call set.add / discard, one integer added to
    the thread started                      _thread.start_new_thread

None of the model's robustness is here: no critical section (a Ctrl-C between two
bytecodes can leak a slot, an event or a table entry), no slot wait (no slot free: the
start fails), no per-thread host-call accounts, no profile, no shutdown coordination
(no join of every thread, no refusal of starts racing a shutdown), no fork-child
handling, no kept exception, no record-before-start.  What the LibOS costs above this
floor is the price of those properties; what the floor costs above native is what any
Python LibOS doing this accounting must pay, so it says whether the ``÷ native``
targets of #7 are reachable in Python at all.

    python benchmarks/clone_floor.py [--rounds N] [--threads N]   # time, interleaved
    python benchmarks/clone_floor.py --opcodes [--threads N]      # bytecodes, exact

The timing runs native and the floor interleaved in rounds (batches of 100 starts, each
joined), medians, and prints the load average beside them: on a busy machine the ratio
is indicative.  ``--opcodes`` counts the bytecodes per ``threading.Thread(target=f)
.start()`` and join with ``clone_overhead.py``'s counter (the creator and the new thread
from its first frame): deterministic.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import itertools
import os
import statistics
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.table import Table

from clone_overhead import batches, count_opcodes

_ORIGINAL_START = _thread.start_new_thread
_ORIGINAL_JOINABLE: Callable[..., Any] | None = getattr(_thread, "start_joinable_thread", None)
# Called through these module attributes (so the opcode counter can wrap them).
_start_new_thread = _ORIGINAL_START
_start_joinable_thread = _ORIGINAL_JOINABLE


class FloorClone:
    """The bare clone: tid, pooled event, table entry, slot, host-thread record."""

    def __init__(self, pool: int = 64, max_threads: int = 64) -> None:
        self._tids = itertools.count(1)
        self._pipes = [os.pipe() for _ in range(pool)]
        self._pool = list(self._pipes)
        self._table: dict[int, tuple[int, int]] = {}
        self._slots: list[None] = [None] * (max_threads - 1)
        self._host_threads: set[int] = set()
        self.host_calls = 0

    def close(self) -> None:
        for r, w in self._pipes:
            os.close(r)
            os.close(w)
        self._pipes = []

    def _begin(self) -> tuple[int, tuple[int, int]]:
        tid = next(self._tids)
        event = self._pool.pop()
        self._table[tid] = event
        self._slots.pop()
        self.host_calls += 1
        return tid, event

    def _run(self, tid: int, event: tuple[int, int], fn: Callable[..., object], args: Any) -> None:
        ident = _thread.get_ident()
        self._host_threads.add(ident)
        try:
            fn(*args)
        finally:
            self._host_threads.discard(ident)
            del self._table[tid]
            self._pool.append(event)
            self._slots.append(None)

    def start_new_thread(
        self, function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None
    ) -> int:
        tid, event = self._begin()
        if kwargs:
            return _start_new_thread(self._run, (tid, event, lambda: function(*args, **kwargs), ()))
        return _start_new_thread(self._run, (tid, event, function, args))

    def start_joinable_thread(
        self, function: Callable[..., object], handle: object = None, daemon: bool = True
    ) -> object:
        assert _start_joinable_thread is not None
        tid, event = self._begin()
        run = self._run
        return _start_joinable_thread(
            lambda: run(tid, event, function, ()), handle=handle, daemon=daemon
        )


@contextlib.contextmanager
def installed(floor: FloorClone) -> Iterator[FloorClone]:
    """``floor`` as the interpreter's thread start, as ``pylibos.libos.install`` does."""
    replaced: list[tuple[object, str, object]] = [
        (_thread, "start_new_thread", floor.start_new_thread),
        (_thread, "start_new", floor.start_new_thread),
    ]
    if "_start_new_thread" in vars(threading):
        replaced.append((threading, "_start_new_thread", floor.start_new_thread))
    if _ORIGINAL_JOINABLE is not None:
        replaced.append((_thread, "start_joinable_thread", floor.start_joinable_thread))
        if "_start_joinable_thread" in vars(threading):
            replaced.append((threading, "_start_joinable_thread", floor.start_joinable_thread))
    saved = [(owner, name, vars(owner)[name]) for owner, name, _ in replaced]
    try:
        for owner, name, new in replaced:
            setattr(owner, name, new)
        yield floor
    finally:
        for owner, name, old in reversed(saved):
            setattr(owner, name, old)


def _primitives() -> list[tuple[object, str]]:
    """The primitives the counter wraps: threading's (native) and the floor's."""
    here = sys.modules[__name__]
    out: list[tuple[object, str]] = [(here, "_start_new_thread")]
    if _ORIGINAL_JOINABLE is not None:
        out.append((here, "_start_joinable_thread"))
    out += [(threading, name) for name in ("_start_new_thread", "_start_joinable_thread")
            if getattr(threading, name, None) is not None]  # fmt: skip
    return out


def _count(starts: int) -> None:
    native, _ = count_opcodes(contextlib.nullcontext, starts, _primitives())
    floor = FloorClone()
    try:
        total, per = count_opcodes(lambda: installed(floor), starts, _primitives())
    finally:
        floor.close()
    table = Table(title=f"Python bytecodes per Thread.start() and join ({starts} starts)")
    for col in ("step", "bytecodes", "÷ native", "added"):
        table.add_column(col, justify="right")
    table.add_row("native", f"{native:,.1f}", "1.000", "")
    table.add_row(
        "floor clone", f"{total:,.1f}", f"{total / native:.3f}", f"{total - native:+,.1f}"
    )
    Console().print(table)
    mine = {k: n for k, n in per.items() if k[0] == __file__ or k[0].endswith("clone_floor.py")}
    for (_path, name), n in sorted(mine.items(), key=lambda kv: -kv[1]):
        print(f"  {name}: {n:.1f}")


def _time(rounds: int, threads: int, pin: bool) -> None:
    # On one CPU, as ``pylibos compare`` measures (the highest this process may use): on
    # any CPU a start waits for the other CPU to wake, which costs more than the clone.
    cpu = max(os.sched_getaffinity(0)) if pin else None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    floor = FloorClone()
    samples: dict[str, list[int]] = {"native": [], "floor clone": []}
    load = os.getloadavg()
    try:
        steps: list[tuple[str, Callable[[], contextlib.AbstractContextManager[object]]]] = [
            ("native", contextlib.nullcontext),
            ("floor clone", lambda: installed(floor)),
        ]
        for _, cm in steps:  # warm-up
            with cm():
                batches(100, [])
        for _ in range(rounds):
            for name, cm in steps:
                with cm():
                    batches(threads, samples[name])
    finally:
        floor.close()
    load_after = os.getloadavg()
    table = Table(title="threading.Thread(target=f).start(), medians of interleaved rounds")
    for col in ("step", "µs", "÷ native", "added µs"):
        table.add_column(col, justify="right")
    base = statistics.median(samples["native"]) / 1000
    for name, got in samples.items():
        med = statistics.median(got) / 1000
        table.add_row(name, f"{med:.1f}", f"{med / base:.3f}", f"{med - base:+.1f}")
    Console().print(table)
    where = f"on CPU {cpu}" if cpu is not None else "on any CPU"
    print(f"load average (1 min) before {load[0]:.2f}, after {load_after[0]:.2f}; "
          f"{os.cpu_count()} CPUs, measured {where}; {rounds} rounds of {threads} starts "
          "per step")  # fmt: skip


def main() -> None:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (7)")
    parser.add_argument("--threads", type=int, help="starts per step per round (1000; "
                        "with --opcodes, 256)")  # fmt: skip
    parser.add_argument("--opcodes", action="store_true",
                        help="count Python bytecodes per start (deterministic)")  # fmt: skip
    parser.add_argument("--all-cpus", action="store_true",
                        help="time on any CPU (default: one, as pylibos compare does)")  # fmt: skip
    args = parser.parse_args()
    if (args.threads is not None and args.threads < 1) or args.rounds < 1:
        sys.exit("ERROR: --threads and --rounds must be positive")
    if args.opcodes:
        _count(args.threads or 256)
    else:
        _time(args.rounds, args.threads or 1000, not args.all_cpus)


if __name__ == "__main__":
    main()
