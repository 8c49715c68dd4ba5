"""The floor of a LibOS thread start: the least a clone can do and still do its work;
and the same work with the LibOS's guarantees kept but none of its layering.

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
handling, no kept exception, no record-before-start.

``GuardedClone`` (in ``clone_guarded.py``) does the floor's work and keeps the guarantees
a LibOS start gives, in one creator function and one thread function, with no layer
between them (no hook
calling ``LibOS._clone`` calling the PAL's ``thread_start_now`` and its ledger gate; on
the thread no ``PalThread._run`` calling the LibOS's exit work): see its docstring for
what it keeps and what it does not.  What the LibOS costs above the guarded clone is the
price of its layering; what the guarded clone costs above the floor, the price of the
guarantees themselves; what the floor costs above native, what any Python LibOS doing
this accounting must pay.  ``GuardedEventfdClone`` is the guarded clone with sgx/eventfd's
event instead of a pooled one: a new host eventfd per start, with the PAL's identity
registry and check, closed at the thread's exit; beside the LibOS on sgx/eventfd it
prices the same two things for the eventfd target.

    python benchmarks/clone_floor.py [--processes K] [--rounds N] [--threads N]  # time
    python benchmarks/clone_floor.py --opcodes [--threads N]      # bytecodes, exact

The timing runs native, the floor, the guarded clones and the LibOS on sgx/raw+pool
and sgx/eventfd interleaved in rounds (batches
of 100 starts, each joined) on one CPU, in each of ``--processes`` measuring processes
one after the other (5; 1: in this process): the same code measures differently from
one process to the next (where its objects and threads' stacks fall), so one process
alone says little.  Per step it prints the median over the processes of each one's
median ÷ its own native median, their range, and native's median time, with the load
average beside them: on a busy machine the ratios are indicative.  ``--opcodes`` counts
the bytecodes per ``threading.Thread(target=f).start()`` and join with
``clone_overhead.py``'s counter (the creator and the new thread from its first frame):
deterministic.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.table import Table

import clone_guarded
from clone_guarded import GuardedClone, GuardedEventfdClone, _Clone
from clone_overhead import batches, count_opcodes
from pylibos.libos import SAMPLE_EVERY, LibOS, install
from pylibos.pal import Host, open_host

_ORIGINAL_START = _thread.start_new_thread
_ORIGINAL_JOINABLE: Callable[..., Any] | None = getattr(_thread, "start_joinable_thread", None)
# Called through these module attributes (so the opcode counter can wrap them).
_start_new_thread = _ORIGINAL_START
_start_joinable_thread = _ORIGINAL_JOINABLE
_OWN_FILES = ("clone_floor.py", "clone_guarded.py")  # whose functions ``--opcodes`` lists


class FloorClone(_Clone):
    """The bare clone: tid, pooled event, table entry, slot, host-thread record."""

    def __init__(self, pool: int = 64, max_threads: int = 64) -> None:
        super().__init__(pool, max_threads)
        self._tids = itertools.count(1)
        self._table: dict[int, tuple[int, int]] = {}
        self._host_threads: set[int] = set()
        self.host_calls = 0

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
        self, function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None, /
    ) -> int:
        tid, event = self._begin()
        if kwargs:
            return _start_new_thread(self._run, (tid, event, lambda: function(*args, **kwargs), ()))
        return _start_new_thread(self._run, (tid, event, function, args))

    def start_joinable_thread(
        self, function: Callable[..., object], /, handle: object = None, daemon: bool = True
    ) -> object:
        assert _start_joinable_thread is not None
        tid, event = self._begin()
        run = self._run
        return _start_joinable_thread(
            lambda: run(tid, event, function, ()), handle=handle, daemon=daemon
        )


@contextlib.contextmanager
def installed(clone: _Clone) -> Iterator[_Clone]:
    """``clone`` as the interpreter's thread start, as ``pylibos.libos.install`` does."""
    replaced: list[tuple[object, str, object]] = [
        (_thread, "start_new_thread", clone.start_new_thread),
        (_thread, "start_new", clone.start_new_thread),
    ]
    if "_start_new_thread" in vars(threading):
        replaced.append((threading, "_start_new_thread", clone.start_new_thread))
    if _ORIGINAL_JOINABLE is not None:
        replaced.append((_thread, "start_joinable_thread", clone.start_joinable_thread))
        if "_start_joinable_thread" in vars(threading):
            replaced.append((threading, "_start_joinable_thread", clone.start_joinable_thread))
    saved = [(owner, name, vars(owner)[name]) for owner, name, _ in replaced]
    try:
        for owner, name, new in replaced:
            setattr(owner, name, new)
        clone.installed = True
        yield clone
    finally:
        clone.installed = False
        for owner, name, old in reversed(saved):
            setattr(owner, name, old)


_LIBOS = f"LibOS sgx/raw+pool (1 in {SAMPLE_EVERY})"
_LIBOS_EVENTFD = f"LibOS sgx/eventfd (1 in {SAMPLE_EVERY})"
_STEPS = ("native", "floor clone", "guarded clone", _LIBOS, "guarded eventfd", _LIBOS_EVENTFD)


def _libos(events: str = "raw") -> tuple[Host, LibOS]:
    """A LibOS a start target is set for, as ``pylibos compare`` runs it: an sgx host,
    pooled raw events (or a new eventfd per start), the profile timing one start in
    ``SAMPLE_EVERY``."""
    host = open_host("sgx")
    return host, LibOS(host, events, pool=events == "raw", profile_every=SAMPLE_EVERY)


def _primitives() -> list[tuple[object, str]]:
    """The primitives the counter wraps: threading's (native) and the clones' (each
    module calls them through its own attributes)."""
    out: list[tuple[object, str]] = []
    for module in (sys.modules[__name__], clone_guarded):
        out.append((module, "_start_new_thread"))
        if _ORIGINAL_JOINABLE is not None:
            out.append((module, "_start_joinable_thread"))
    out += [(threading, name) for name in ("_start_new_thread", "_start_joinable_thread")
            if getattr(threading, name, None) is not None]  # fmt: skip
    return out


def _count_bytecodes(starts: int) -> None:
    native, _ = count_opcodes(contextlib.nullcontext, starts, _primitives())
    counted: list[tuple[str, float, dict[tuple[str, str], float]]] = []
    makers: list[tuple[str, Callable[[], _Clone]]] = [
        ("floor clone", FloorClone),
        ("guarded clone", lambda: GuardedClone(profile_every=SAMPLE_EVERY)),
        ("guarded eventfd", lambda: GuardedEventfdClone(profile_every=SAMPLE_EVERY)),
    ]
    for name, make in makers:
        clone = make()
        try:
            total, per = count_opcodes(
                lambda clone=clone: installed(clone),  # type: ignore[misc]
                starts,
                _primitives(),
            )
        finally:
            clone.close()
        counted.append((name, total, per))
    for name, events in ((_LIBOS, "raw"), (_LIBOS_EVENTFD, "eventfd")):
        host, libos = _libos(events)
        try:  # (the PAL's primitives too: clone_overhead's default)
            total, per = count_opcodes(lambda libos=libos: install(libos), starts)  # type: ignore[misc]
        finally:
            libos.shutdown()
            host.shutdown()
        counted.append((name, total, per))
    table = Table(title=f"Python bytecodes per Thread.start() and join ({starts} starts)")
    for col in ("step", "bytecodes", "÷ native", "added"):
        table.add_column(col, justify="right")
    table.add_row("native", f"{native:,.1f}", "1.000", "")
    for name, total, _ in counted:
        table.add_row(name, f"{total:,.1f}", f"{total / native:.3f}", f"{total - native:+,.1f}")
    Console().print(table)
    for name, _, per in counted[:3]:
        print(f"{name}, its own functions:")
        mine = {k: n for k, n in per.items() if k[0].endswith(_OWN_FILES)}
        for (_path, func), n in sorted(mine.items(), key=lambda kv: -kv[1]):
            print(f"  {func}: {n:.1f}")


def _measure(rounds: int, threads: int, pin: bool) -> tuple[dict[str, float], int | None]:
    """Each step's median start (ns), interleaved rounds in this process; and the CPU."""
    # On one CPU, as ``pylibos compare`` measures (the highest this process may use): on
    # any CPU a start waits for the other CPU to wake, which costs more than the clone.
    cpu = max(os.sched_getaffinity(0)) if pin else None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    samples: dict[str, list[int]] = {name: [] for name in _STEPS}
    with contextlib.ExitStack() as made:  # each one made is closed, whatever comes after
        floor = FloorClone()
        made.callback(floor.close)
        guarded = GuardedClone(profile_every=SAMPLE_EVERY)
        made.callback(guarded.close)
        guarded_eventfd = GuardedEventfdClone(profile_every=SAMPLE_EVERY)
        made.callback(guarded_eventfd.close)
        libos = _libos_made(made, "raw")
        eventfd_libos = _libos_made(made, "eventfd")
        steps: list[tuple[str, Callable[[], contextlib.AbstractContextManager[object]]]] = [
            ("native", contextlib.nullcontext),
            ("floor clone", lambda: installed(floor)),
            ("guarded clone", lambda: installed(guarded)),
            (_LIBOS, lambda: install(libos)),
            ("guarded eventfd", lambda: installed(guarded_eventfd)),
            (_LIBOS_EVENTFD, lambda: install(eventfd_libos)),
        ]
        for _, cm in steps:  # warm-up
            with cm():
                batches(100, [])
        for _ in range(rounds):
            for name, cm in steps:
                with cm():
                    batches(threads, samples[name])
    return {name: float(statistics.median(got)) for name, got in samples.items()}, cpu


def _libos_made(made: contextlib.ExitStack, events: str) -> LibOS:
    """``_libos(events)``, its LibOS and host shut down when ``made`` closes."""
    host, libos = _libos(events)
    made.callback(host.shutdown)
    made.callback(libos.shutdown)
    return libos


def _child_command(rounds: int, threads: int, pin: bool) -> list[str]:
    """A measuring process: this script, printing one JSON line (``--measure``)."""
    command = [sys.executable, os.path.abspath(__file__), "--measure"]
    command += ["--rounds", str(rounds), "--threads", str(threads)]
    return command + ([] if pin else ["--all-cpus"])


def _tail(text: str, lines: int = 4) -> str:
    got = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(f"  {line}" for line in got) if got else "  (nothing)"


def _measured_apart(
    which: int, processes: int, rounds: int, threads: int, pin: bool
) -> tuple[dict[str, float], int | None]:
    """One measuring process's medians, or exit with an ``ERROR:`` naming it."""
    name = f"measuring process {which} of {processes}"
    # A start takes tens of µs; this bound only keeps a stuck process from hanging us.
    timeout = 120.0 + 0.01 * len(_STEPS) * (rounds + 1) * threads
    try:
        out = subprocess.run(
            _child_command(rounds, threads, pin),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"ERROR: {name} did not finish within {timeout:.0f} s")
    if out.returncode != 0:
        sys.exit(
            f"ERROR: {name} failed (exit status {out.returncode}); its stderr ends:\n"
            + _tail(out.stderr)
        )
    try:
        got = json.loads(out.stdout.strip().splitlines()[-1])
        medians = {step: float(got["medians"][step]) for step in _STEPS}
        cpu = got["cpu"]
    except (ValueError, LookupError, TypeError):
        sys.exit(
            f"ERROR: {name} printed no result; its output ends:\n"
            + _tail(out.stdout + "\n" + out.stderr)
        )
    return medians, cpu if isinstance(cpu, int) else None


def _time(processes: int, rounds: int, threads: int, pin: bool) -> None:
    load = os.getloadavg()
    results = [
        _measure(rounds, threads, pin)
        if processes == 1
        else _measured_apart(i + 1, processes, rounds, threads, pin)
        for i in range(processes)
    ]
    load_after = os.getloadavg()
    title = "threading.Thread(target=f).start(): medians of interleaved rounds"
    if processes > 1:
        title += f", over {processes} processes"
    table = Table(title=title)
    for col in ("step", "µs", "÷ native", "÷ native, range", "added µs"):
        table.add_column(col, justify="right")
    base = statistics.median(medians["native"] for medians, _ in results) / 1000
    for step in _STEPS:
        ratios = [medians[step] / medians["native"] for medians, _ in results]
        med = statistics.median(medians[step] for medians, _ in results) / 1000
        spread = f"{min(ratios):.3f}–{max(ratios):.3f}" if step != "native" else ""
        table.add_row(
            step, f"{med:.1f}", f"{statistics.median(ratios):.3f}", spread, f"{med - base:+.1f}"
        )
    Console().print(table)
    cpus = sorted({cpu for _, cpu in results if cpu is not None})
    where = f"on CPU {', '.join(map(str, cpus))}" if cpus else "on any CPU"
    apart = "in this process" if processes == 1 else f"in {processes} processes one after another"
    print(f"load average (1 min) before {load[0]:.2f}, after {load_after[0]:.2f}; "
          f"{os.cpu_count()} CPUs, measured {where}; {apart}; {rounds} rounds of {threads} "
          "starts per step")  # fmt: skip


def _refuse(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=5,
                        help="measuring processes, one after another (5; 1: this one)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=7,
                        help="interleaved rounds per process (7)")  # fmt: skip
    parser.add_argument("--threads", type=int, help="starts per step per round (1000; "
                        "with --opcodes, 256)")  # fmt: skip
    parser.add_argument("--opcodes", action="store_true",
                        help="count Python bytecodes per start (deterministic)")  # fmt: skip
    parser.add_argument("--all-cpus", action="store_true",
                        help="time on any CPU (default: one, as pylibos compare does)")  # fmt: skip
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.threads is not None and args.threads < 1) or args.rounds < 1:
        _refuse("--threads and --rounds must be positive")
    if args.processes < 1:
        _refuse(f"--processes must be at least 1 (1: time in this process), got {args.processes}")
    try:
        if args.opcodes:
            _count_bytecodes(args.threads or 256)
        elif args.measure:
            medians, cpu = _measure(args.rounds, args.threads or 1000, not args.all_cpus)
            print(json.dumps({"medians": medians, "cpu": cpu}))
        else:
            _time(args.processes, args.rounds, args.threads or 1000, not args.all_cpus)
    except KeyboardInterrupt:
        sys.exit(130)  # (a measuring process running was killed by subprocess.run)


if __name__ == "__main__":
    main()
