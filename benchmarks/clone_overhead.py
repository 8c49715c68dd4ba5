"""What the LibOS adds to the application's ``threading.Thread(target=f).start()``, part
by part.

Each step times the same statement: natively, then with the LibOS installed under
``threading`` (``pylibos.libos.install``) on an sgx host with pooled raw events (so no host
channel is made per thread), first with the LibOS profile off, then on (timing one start
in 8, as ``pylibos run`` does by default), then on for every start, then on an sgx host with eventfd
events.  The profile-on steps also give the LibOS's own phases inside the start (over the
starts they timed).  Batches of 100 threads, each joined; steps interleaved in rounds; medians.

    python benchmarks/clone_overhead.py [--rounds N] [--threads N]

On a busy machine the times say little.  ``--instructions`` counts instead the CPU
instructions one start costs, the creator's and the new thread's together, under
valgrind's callgrind (which runs the threads one at a time): each step runs N and 4N
starts, each joined before the next, and the difference is divided by 3N, so start-up
and shutdown drop out.  Counts do not depend on the load; they leave out the time the
new thread waits for the CPU, which the native start pays as well.

    python benchmarks/clone_overhead.py --instructions [--threads N]   # about 2 minutes

``--opcodes`` counts the Python bytecodes one start executes, per function, natively and
for each LibOS step, and what the LibOS adds: deterministic, and quick (seconds).  Each
step runs N starts, each joined before the next, under a ``sys.settrace`` opcode tracer in
the creator and in every new thread from its first frame on (the interpreter's thread
primitive, as ``threading`` and the PAL call it, is wrapped to trace the new thread before
anything else runs on it), so the LibOS's and the PAL's work on the new thread before and
after ``threading``'s bootstrap is counted with the creator's.  The join is counted too, the
same statement in every step.  At about 25 ns a bytecode, each one added is a measurable
part of a start.

    python benchmarks/clone_overhead.py --opcodes [--threads N] [--top K]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from pylibos.libos import SAMPLE_EVERY, LibOS, install
from pylibos.pal import Host, open_host
from pylibos.pal import _thread as pal_thread


def _noop() -> None:
    return None


def batches(threads: int, out: list[int]) -> None:
    """Start ``threads`` threads in batches of 100, each batch joined; each start's time
    (ns) appended to ``out``."""
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


# --instructions and --opcodes: the steps, as (name, (events, pool, profile, one start
# in how many the profile times)); None: native.  "profile on" samples as ``pylibos run``
# does by default (SAMPLE_EVERY); "every start" times each one (a LibOS's default).
_COUNTED: list[tuple[str, tuple[str, bool, bool, int] | None]] = [
    ("native Thread.start()", None),
    ("LibOS sgx/raw+pool, profile off", ("raw", True, False, SAMPLE_EVERY)),
    (f"LibOS sgx/raw+pool, profile on (1 in {SAMPLE_EVERY})", ("raw", True, True, SAMPLE_EVERY)),
    (
        f"LibOS sgx/eventfd, profile on (1 in {SAMPLE_EVERY})",
        ("eventfd", False, True, SAMPLE_EVERY),
    ),
    ("LibOS sgx/raw+pool, profile on every start", ("raw", True, True, 1)),
    ("LibOS sgx/eventfd, profile on every start", ("eventfd", False, True, 1)),
    ("LibOS sgx/eventfd, profile off", ("eventfd", False, False, SAMPLE_EVERY)),
]


def _libos(host: Host, spec: tuple[str, bool, bool, int] | None) -> LibOS | None:
    if spec is None:
        return None
    events, pool, profile, every = spec
    return LibOS(host, events, pool=pool, profile=profile, profile_every=every)


def _count_run(step: int, starts: int) -> None:
    """The program valgrind runs: ``starts`` starts of one step, after a warm-up."""
    spec = _COUNTED[step][1]
    host = open_host("sgx")
    libos = _libos(host, spec)
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


class _OpcodeCounter:
    """Counts the bytecodes executed per function, in the creator and in every thread
    started through the wrapped primitives (``traced``), from the thread's first frame."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._skip = {self._starting.__code__}

    def tracer(self, frame: Any, event: str, arg: object) -> Any:
        if event == "call":
            if frame.f_code in self._skip:
                return None
            frame.f_trace_opcodes = True
        elif event == "opcode":
            code = frame.f_code
            self.counts[(code.co_filename, code.co_qualname)] += 1
        return self.tracer

    def _starting(self, fn: Callable[..., object], args: tuple[Any, ...]) -> object:
        sys.settrace(self.tracer)  # frames opened from here on, this one's excepted
        return fn(*args)

    def traced(self, primitive: Callable[..., Any], joinable: bool) -> Callable[..., Any]:
        """``primitive`` (``start_joinable_thread`` if ``joinable``, else
        ``start_new_thread``), starting a thread that traces itself from its first frame."""
        starting = self._starting

        def start(function: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
            if joinable:
                return primitive(lambda: starting(function, ()), *args, **kwargs)
            return primitive(starting, (function, args[0]), *args[1:], **kwargs)

        self._skip.add(start.__code__)
        return start


# The primitives, as threading (natively) and the PAL (under the LibOS) call them.
_PRIMITIVES = [(mod, name) for mod in (threading, pal_thread)
               for name in ("_start_new_thread", "_start_joinable_thread")
               if getattr(mod, name, None) is not None]  # fmt: skip


def count_opcodes(
    installed: Callable[[], contextlib.AbstractContextManager[object]],
    starts: int,
    primitives: list[tuple[object, str]] | None = None,
) -> tuple[float, dict[tuple[str, str], float]]:
    """Bytecodes per start (the statement and its join) while ``installed()`` is entered:
    total, per function.  ``primitives`` are the ``(module, name)`` thread primitives to
    wrap so each new thread traces itself from its first frame (``_PRIMITIVES`` when
    None: as ``threading`` and the PAL call them)."""
    counter = _OpcodeCounter()
    saved = [(mod, name, getattr(mod, name)) for mod, name in primitives or _PRIMITIVES]
    try:
        for mod, name, primitive in saved:
            setattr(mod, name, counter.traced(primitive, "joinable" in name))
        with installed():
            for _ in range(20):  # warm-up: fills the pool, specialises the bytecode
                t = threading.Thread(target=_noop)
                t.start()
                t.join(30)
            counter.counts.clear()
            sys.settrace(counter.tracer)
            try:
                for _ in range(starts):
                    t = threading.Thread(target=_noop)
                    t.start()
                    t.join(30)
            finally:
                sys.settrace(None)
            counts = dict(counter.counts)
    finally:
        for mod, name, primitive in saved:
            setattr(mod, name, primitive)
    per = {key: n / starts for key, n in counts.items()}
    return sum(per.values()), per


def _opcodes(step: int, starts: int) -> tuple[float, dict[tuple[str, str], float]]:
    """Bytecodes per start of one step (the statement and its join): total, per function."""
    spec = _COUNTED[step][1]
    host = open_host("sgx")
    libos = _libos(host, spec)
    try:
        return count_opcodes(
            lambda: contextlib.nullcontext() if libos is None else install(libos), starts
        )
    finally:
        if libos is not None:
            libos.shutdown()
        host.shutdown()


def _where(key: tuple[str, str]) -> str:
    path, name = key
    parts = path.split(os.sep)
    if "pylibos" in parts:
        path = "/".join(parts[len(parts) - parts[::-1].index("pylibos") :])
    else:
        path = parts[-1]
    return f"{path}:{name}"


def _layer_sum(per: dict[tuple[str, str], float], layer: str) -> float:
    """Bytecodes per start in one layer: a pylibos package, or everything else."""
    inside = [f"{os.sep}{part}{os.sep}" for part in layer.split("/")] if "/" in layer else []
    total = 0.0
    for (path, _name), n in per.items():
        ours = f"{os.sep}pylibos{os.sep}" in path
        if (inside and all(part in path for part in inside)) or (not inside and not ours):
            total += n
    return total


def _count_opcodes(starts: int, top: int) -> None:
    results = [_opcodes(step, starts) for step in range(len(_COUNTED))]
    # Seven steps side by side: wide enough for whole names when not on a terminal.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"Python bytecodes per Thread.start() and join ({starts} starts, "
                  "creator and new thread)")  # fmt: skip
    for col in ("step", "bytecodes", "÷ native", "LibOS adds"):
        table.add_column(col, justify="right")
    floor = results[0][0]
    for (name, _), (total, _per) in zip(_COUNTED, results, strict=True):
        table.add_row(name, f"{total:,.1f}", f"{total / floor:.3f}", f"{total - floor:+,.1f}")
    console.print(table)
    names = ["native", "pool, off", "pool, on", "eventfd", "pool, every", "eventfd, every",
             "eventfd, off"]  # fmt: skip
    layers = Table(title="By layer (bytecodes per start)")
    layers.add_column("layer")
    for col in names:
        layers.add_column(col, justify="right")
    for layer in ("pylibos/libos", "pylibos/pal", "the standard library"):
        layers.add_row(layer, *(f"{_layer_sum(per, layer):,.1f}" for _, per in results))
    console.print(layers)
    funcs = Table(title=f"Per function (the {top} largest in any step)")
    funcs.add_column("function", overflow="fold")
    for col in names:
        funcs.add_column(col, justify="right")
    keys = sorted({k for _, per in results for k in per},
                  key=lambda k: -max(per.get(k, 0.0) for _, per in results))  # fmt: skip
    for key in keys[:top]:
        funcs.add_row(_where(key), *(f"{per.get(key, 0.0):.1f}" for _, per in results))
    console.print(funcs)


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
    parser.add_argument(
        "--opcodes",
        action="store_true",
        help="count Python bytecodes per start and function (deterministic)",
    )
    parser.add_argument("--top", type=int, default=40,
                        help="with --opcodes: functions listed (40)")  # fmt: skip
    parser.add_argument("--count", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count is not None:
        _count_run(*args.count)
        return
    if args.opcodes:
        _count_opcodes(args.threads or 256, args.top)
        return
    if args.instructions:
        if shutil.which("valgrind") is None:
            sys.exit("ERROR: --instructions needs valgrind (e.g. apt-get install valgrind)")
        _count_instructions(args.threads or 100)
        return
    args.threads = args.threads or 1000
    hosts = [open_host("sgx") for _ in range(4)]
    off = LibOS(hosts[0], "raw", pool=True, profile=False)
    on = LibOS(hosts[1], "raw", pool=True, profile=True, profile_every=SAMPLE_EVERY)
    every = LibOS(hosts[2], "raw", pool=True, profile=True, profile_every=1)
    efd = LibOS(hosts[3], "eventfd", pool=False, profile=True, profile_every=SAMPLE_EVERY)
    phases: dict[str, dict[str, list[int]]] = {}

    def hooked(libos: LibOS | None) -> Callable[[int, list[int]], None]:
        def run(threads: int, out: list[int]) -> None:
            if libos is None:
                batches(threads, out)
                return
            with install(libos):
                batches(threads, out)

        return run

    steps: list[tuple[str, LibOS | None]] = [
        ("native Thread.start()", None),
        ("LibOS sgx/raw+pool, profile off", off),
        (f"LibOS sgx/raw+pool, profile on (1 in {SAMPLE_EVERY})", on),
        ("LibOS sgx/raw+pool, profile on every start", every),
        (f"LibOS sgx/eventfd, profile on (1 in {SAMPLE_EVERY})", efd),
    ]
    samples: dict[str, list[int]] = {name: [] for name, _ in steps}
    try:
        for _, libos in steps:
            hooked(libos)(100, [])  # warm-up (fills the pool)
        for libos in (on, every, efd):
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
        for libos, host in zip((off, on, every, efd), hosts, strict=True):
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
