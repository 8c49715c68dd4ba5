"""Per-call timing of the thread-creation path, the seed's breakdown.

Phases nest: ``clone`` holds ``get_new_thread``, which holds ``create_pollable_event``,
which holds the ``handshake`` operations the sgx PAL performs for a TLS pipe (session
key, secure init, the helper thread, the accepting end's handshake).  A phase that runs
several times inside one outermost phase (two handshake operations per event) is summed,
so every phase yields one sample per clone and the seed's proportions are ratios of
per-clone figures.  Each sample also carries the host calls made while it ran.

Only a ``clone`` and the phases nested in it are samples.  The same phases also run on
their own: the LibOS makes its main thread and its workers' events at boot, adopts
threads it did not create, and the sgx PAL handshakes for every IPC connection.  None of
that is the cost of a clone, and counting it would skew the per-clone ratios.

The profile is cheap enough to leave on: one ``perf_counter_ns`` and one read of the
calling thread's host-call count at each phase boundary, and a thread-local stack.  Host
calls are counted per thread (a handshake helper's go to the thread that started it), so
threads running beside a clone never add to its sample.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..pal import Host

PHASES = ("clone", "get_new_thread", "create_pollable_event", "handshake")
ROOT = "clone"
"""The outermost phase a sample is taken under."""


@dataclass(frozen=True)
class PhaseStats:
    count: int
    sum_ns: int
    mean_ns: float
    median_ns: float
    p95_ns: float
    host_calls: int

    @property
    def host_calls_per_call(self) -> float:
        return self.host_calls / self.count if self.count else 0.0


@dataclass(frozen=True)
class ProfileSnapshot:
    """Frozen statistics of every phase seen so far, in the spirit of ``statistics()``."""

    phases: dict[str, PhaseStats]

    def get(self, phase: str) -> PhaseStats | None:
        return self.phases.get(phase)

    def proportion(self, part: str, whole: str) -> float | None:
        """Ratio of the phases' total times (equal to the ratio of per-clone means)."""
        p, w = self.phases.get(part), self.phases.get(whole)
        if p is None or w is None or not w.sum_ns:
            return None
        return p.sum_ns / w.sum_ns


def _p95(sorted_values: list[int]) -> float:
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    return float(statistics.quantiles(sorted_values, n=20, method="inclusive")[-1])


class _Null:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()


class _Phase:
    """Times one phase.  One instance per phase name, shared by all threads: the open
    frames live in a thread-local stack of (name, start ns, host calls at start), and
    what nested phases measured is summed into the thread's ``acc`` until the outermost
    phase ends."""

    __slots__ = ("_local", "_name", "_profile")

    def __init__(self, profile: Profile, name: str) -> None:
        self._profile = profile
        self._local = profile._local
        self._name = name

    def __enter__(self) -> None:
        local = self._local
        try:
            stack = local.stack
        except AttributeError:
            stack = local.stack = []
        if not stack:
            local.acc = {}
        stack.append((self._name, time.perf_counter_ns(), self._profile._host.thread_calls()))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = time.perf_counter_ns()
        profile = self._profile
        calls = profile._host.thread_calls()
        local = self._local
        stack: list[tuple[str, int, int]] = local.stack
        name, t0, calls0 = stack.pop()
        dt, dcalls = end - t0, calls - calls0
        acc: dict[str, list[int]] = local.acc
        if stack:
            slot = acc.get(name)
            if slot is None:
                acc[name] = [dt, dcalls]
            else:
                slot[0] += dt
                slot[1] += dcalls
            return
        if exc_type is not None or name != ROOT:
            return  # only whole clones are samples; a failed clone is not one
        with profile._lock:
            profile._record(name, dt, dcalls)
            for inner, (t, c) in acc.items():
                profile._record(inner, t, c)


class Profile:
    """Collects phase samples; ``phase(name)`` is the context manager that times one."""

    def __init__(self, host: Host, *, enabled: bool = True) -> None:
        self._host = host
        self.enabled = enabled
        self._local = threading.local()
        self._timers: dict[str, _Phase] = {}
        # Guarded by _lock.
        self._lock = threading.Lock()
        self._ns: dict[str, list[int]] = {}
        self._calls: dict[str, int] = {}

    def phase(self, name: str) -> _Phase | _Null:
        if not self.enabled:
            return _NULL
        timer = self._timers.get(name)
        if timer is None:
            timer = self._timers[name] = _Phase(self, name)
        return timer

    def _record(self, name: str, ns: int, calls: int) -> None:
        samples = self._ns.get(name)
        if samples is None:
            self._ns[name] = [ns]
            self._calls[name] = calls
        else:
            samples.append(ns)
            self._calls[name] += calls

    def reset(self) -> None:
        with self._lock:
            self._ns.clear()
            self._calls.clear()

    def statistics(self) -> ProfileSnapshot:
        with self._lock:
            data = {name: sorted(values) for name, values in self._ns.items()}
            calls = dict(self._calls)
        phases = {}
        for name, values in data.items():
            total = sum(values)
            phases[name] = PhaseStats(
                count=len(values),
                sum_ns=total,
                mean_ns=total / len(values),
                median_ns=float(statistics.median(values)),
                p95_ns=_p95(values),
                host_calls=calls[name],
            )
        return ProfileSnapshot(phases)

    def samples(self, phase: str) -> list[int]:
        """The raw per-clone samples of ``phase`` in ns, in the order taken."""
        with self._lock:
            return list(self._ns.get(phase, ()))
