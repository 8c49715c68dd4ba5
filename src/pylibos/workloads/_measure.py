"""Real programs, each run in its own process, natively and under ``pylibos run``.

A workload is an ordinary Python program (``benchmarks/workloads/*.py``) that prints one
deterministic result line.  Every run is a fresh process: natively ``python script.py``,
otherwise ``python -m pylibos run --pal P --events E [--pool] --json F -- script.py``.
The configurations are interleaved round by round (in each round every workload runs once
under every configuration, native first), so drift in the machine's speed hits them all
alike.  Each LibOS run's result line is checked against native's.

The wall time is the parent's view of the whole process, interpreter start and (under
the LibOS) its boot and shutdown included: what a user waits for.  The threads created
and the host calls come from the JSON ``pylibos run`` writes.

A run that fails (an exit status other than 0, a signal, no result line, the time
limit), or whose result differs from native's, marks its workload and configuration as
failed: it is not run again, and the others go on.  Every child runs in a session of its
own, so a Ctrl-C at the terminal reaches only this process, which kills the child's
whole process group and reaps it before it reports what was measured so far.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._schema import (
    WORKLOADS_FORMAT_VERSION,
    PhaseStats,
    WorkloadsEntry,
    WorkloadsRun,
    WorkloadsSettings,
)
from ..bench._configs import Config
from ..bench._measure import machine, nominal_ghz
from ._child import Outcome, RunFailed, run_once

DEFAULT_TIMEOUT_S = 300.0


def default_dir() -> Path:
    """``benchmarks/workloads`` of the source tree pylibos is installed from."""
    return Path(__file__).resolve().parents[3] / "benchmarks" / "workloads"


def discover(folder: Path) -> list[str]:
    """The workloads in ``folder``: every ``*.py`` whose name does not start with ``_``."""
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))


@dataclass(frozen=True)
class Settings:
    folder: Path
    workloads: tuple[str, ...]
    configs: tuple[Config, ...]
    repeat: int = 3
    size: float | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    ocall_cycles: int = 10_000
    ghz: float | None = None

    def as_json(self, ghz: float) -> WorkloadsSettings:
        return {
            "workloads": list(self.workloads),
            "configs": [c.name for c in self.configs],
            "repeat": self.repeat,
            "size": self.size,
            "timeout_s": self.timeout_s,
            "ocall_cycles": self.ocall_cycles,
            "ghz": ghz,
        }


def validate(settings: Settings) -> None:
    """Raise ``ValueError`` naming the first setting out of bounds."""
    if not settings.folder.is_dir():
        raise ValueError(f"no workloads folder {settings.folder}")
    known = discover(settings.folder)
    if not known:
        raise ValueError(f"no workload (*.py) in {settings.folder}")
    if not settings.workloads:
        raise ValueError("no workload named")
    for name in settings.workloads:
        if name not in known:
            raise ValueError(f"unknown workload {name!r}; valid: {', '.join(known)}")
    if len(set(settings.workloads)) != len(settings.workloads):
        raise ValueError("a workload is named twice")
    if not settings.configs:
        raise ValueError("no configuration named")
    if not any(c.native for c in settings.configs):
        raise ValueError("--configs must include native: every result is checked against it")
    if not 1 <= settings.repeat <= 100:
        raise ValueError(f"--repeat must be in [1, 100], got {settings.repeat}")
    size = settings.size
    if size is not None and not (math.isfinite(size) and 0 < size <= 1000):
        raise ValueError(f"--size must be in (0, 1000], got {size:g}")
    if not (math.isfinite(settings.timeout_s) and 0 < settings.timeout_s <= 86_400):
        raise ValueError(f"--timeout must be in (0, 86400] seconds, got {settings.timeout_s:g}")
    if settings.ocall_cycles < 0:
        raise ValueError(f"--ocall-cycles must be >= 0, got {settings.ocall_cycles}")
    if settings.ghz is not None and not 0.1 <= settings.ghz <= 10:
        raise ValueError(f"--ghz must be in [0.1, 10], got {settings.ghz}")


@dataclass
class Cell:
    """One workload under one configuration: every run of it so far."""

    workload: str
    config: Config
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    host_calls: list[int] = field(default_factory=list)
    kinds: list[dict[str, int]] = field(default_factory=list)
    phases: dict[str, PhaseStats] | None = None
    result: str | None = None
    error: str | None = None

    def add(self, outcome: Outcome) -> None:
        self.wall_s.append(outcome.wall_s)
        self.cpu_s.append(outcome.cpu_s)
        self.result = outcome.result
        if outcome.stats is not None:
            self.threads.append(int(outcome.stats["threads_created"]))
            self.host_calls.append(int(outcome.stats["host_calls_total"]))
            self.kinds.append({str(k): int(v) for k, v in outcome.stats["host_calls"].items()})
            self.phases = outcome.stats["phases"]

    def as_json(self, native_result: str | None) -> WorkloadsEntry:
        c = self.config
        ok = self.error is None and self.result is not None and self.result == native_result
        kinds: dict[str, float] = {}
        if self.kinds:
            for name in sorted({k for run in self.kinds for k in run}):
                kinds[name] = statistics.median(run.get(name, 0) for run in self.kinds)
        return {
            "workload": self.workload,
            "config": c.name,
            "pal": c.pal,
            "events": c.events,
            "pool": c.pool,
            "runs": len(self.wall_s),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "median_s": statistics.median(self.wall_s) if self.wall_s else None,
            "threads_created": _median_int(self.threads),
            "threads_created_runs": self.threads,
            "host_calls": _median_int(self.host_calls),
            "host_calls_by_kind": kinds,
            "phases": self.phases,
            "result": self.result,
            "result_ok": ok,
            "error": self.error,
        }


def _median_int(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass
class Run:
    """What a workloads run measured, ready to be written as JSON."""

    settings: Settings
    ghz: float
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    interrupted: bool = False

    def native(self, workload: str) -> Cell | None:
        for (w, _), cell in self.cells.items():
            if w == workload and cell.config.native:
                return cell
        return None

    def errors(self) -> list[str]:
        return [f"{w} under {c}: {cell.error}" for (w, c), cell in self.cells.items() if cell.error]

    def as_json(self) -> WorkloadsRun:
        results: list[WorkloadsEntry] = []
        for workload in self.settings.workloads:
            native = self.native(workload)
            reference = native.result if native is not None and native.error is None else None
            for config in self.settings.configs:
                cell = self.cells.get((workload, config.name))
                if cell is not None and (cell.wall_s or cell.error):
                    results.append(cell.as_json(reference))
        return {
            "version": WORKLOADS_FORMAT_VERSION,
            "kind": "workloads",
            "machine": machine(),
            "settings": self.settings.as_json(self.ghz),
            "interrupted": self.interrupted,
            "results": results,
            "errors": self.errors(),
        }


def run(
    settings: Settings,
    *,
    on_start: Callable[[int, str, str], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> Run:
    """Every workload under every configuration, ``settings.repeat`` rounds, interleaved.

    A KeyboardInterrupt stops the measuring (the running child is killed); what was
    measured so far is returned, with ``interrupted`` set.
    """
    validate(settings)
    ghz = settings.ghz if settings.ghz is not None else nominal_ghz()
    outcome = Run(settings, ghz)
    configs = sorted(settings.configs, key=lambda c: not c.native)  # native first
    for workload in settings.workloads:
        for config in configs:
            outcome.cells[(workload, config.name)] = Cell(workload, config)
    try:
        with tempfile.TemporaryDirectory(prefix="pylibos-workloads-") as scratch:
            for round_no in range(1, settings.repeat + 1):
                for workload in settings.workloads:
                    script = (settings.folder / f"{workload}.py").resolve()
                    native = outcome.native(workload)
                    for config in configs:
                        cell = outcome.cells[(workload, config.name)]
                        if on_start is not None:
                            on_start(round_no, workload, config.name)
                        if cell.error is None and native is not None and native.error:
                            cell.error = "not run: the native run failed"
                        if cell.error is None:
                            _measure(cell, native, script, settings, scratch)
                        if on_done is not None:
                            on_done()
    except KeyboardInterrupt:
        outcome.interrupted = True
    return outcome


def _measure(
    cell: Cell, native: Cell | None, script: Path, settings: Settings, scratch: str
) -> None:
    try:
        got = run_once(cell.config, script, settings.size, settings.timeout_s, scratch)
    except RunFailed as exc:
        cell.error = str(exc)
        return
    # Native's first result is the reference; a later native run must give it again.
    expected = None if native is None else native.result
    if expected is not None and got.result != expected:
        whose = "an earlier native run's" if cell is native else "native's"
        if cell is not native:
            cell.result = got.result
        cell.error = f"result {got.result!r} differs from {whose} {expected!r}"
        return
    cell.add(got)
