"""Running the seed's micro-benchmark: configurations interleaved in rounds, each measured
apart, and the run's settings and machine (why, with the data: ``docs/benchmark.md``,
"Measuring apart" and "Several processes per configuration").

``compare`` interleaves the configurations and live counts in rounds (a slice of each per
round, a configuration's live counts back to back: ``schedule``), so drift in the machine's
speed hits them all alike.  Each configuration at each live count is measured in processes
of its own (``_worker``), only one measuring at a time: a thread start slows with the
threads its process holds, so in one process every configuration would start its threads
beside all the others' live threads.  Each process also keeps a level of its own for its
whole life (hash seed, memory layout), which no interval drawn within it can hold: so there
are ``Settings.processes`` of them, its replicas, taking turns round by round (round ``r``
by the replica ``_resample.round_slots`` gives), the bootstrap drawing the replica slots
before the rounds, and their results merged into one entry (``_merge``).

Every measuring process runs on one CPU (unless ``--all-cpus``): a thread start is a
hand-off, and left to the kernel the new thread often wakes on the other CPU, which may be
halted, busy or stolen by the hypervisor (native's batch medians went from 43 µs to 1.5 ms
within one run); on one CPU the new thread runs when its creator waits for it, the same way
every time.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from .._schema import FORMAT_VERSION, Entry, RunData, SettingsJSON
from ..libos import proportions
from ..pal import default_tls_backend, tls_backend_problem
from ._configs import RATIOS_IN_ROUNDS, Config, measuring_order
from ._machine import RunError, cpu_times, governor, steal_share
from ._machine import ensure_fd_room as ensure_fd_room
from ._machine import machine as machine
from ._machine import nominal_ghz as nominal_ghz
from ._machine import rss_kib as rss_kib
from ._merge import Measured, merge
from ._processes import _ANSWER_S, _END_S, _end, _Process
from ._resample import REPLICA_OF_ROUND, round_slots
from ._subjects import PROFILE_EVERY, sampling_interval
from ._warnings import projected

_P = TypeVar("_P")

DEFAULT_PROCESSES = 3
"""``compare``'s measuring processes per configuration and live count (``--processes``;
docs/benchmark.md, "Several processes per configuration", has what 2 and 3 cost)."""
MAX_PROCESSES = 20

_GRACE_S = 5.0
"""After a Ctrl-C: bound on a measuring process's answer beyond the end of the slice it
is measuring.  One that does not answer is killed and its results left out."""


@dataclass(frozen=True)
class Settings:
    duration: float = 5.0
    batch: int = 100
    rounds: int = 5
    live: tuple[int, ...] = (0,)
    ocall_cycles: int = 10_000
    ghz: float | None = None
    tls: str | None = None
    """TLS backend of sgx hosts; None for this interpreter's default."""
    pin: bool = True
    """Measure on one CPU (``--all-cpus`` turns it off)."""
    processes: int = 1
    """Measuring processes per configuration and live count (``--processes``), taking
    turns round by round: round ``r`` is measured by each one's replica
    ``_resample.round_slots`` gives (``REPLICA_OF_ROUND``)."""
    reference: bool = True
    """Take ratios between configurations and live scaling on times normalised by each
    batch's reference workload (``--no-reference`` turns it off; the reference is timed
    either way)."""
    profile_every: int = PROFILE_EVERY
    """The LibOS profile times one clone in at most this many (``profile_interval``)."""

    def as_json(self, configs: Sequence[Config], ghz: float) -> SettingsJSON:
        return {
            "configs": [c.name for c in configs],
            "duration_s": self.duration,
            "batch": self.batch,
            "rounds": self.rounds,
            "live": list(self.live),
            "ocall_cycles": self.ocall_cycles,
            "ghz": ghz,
            "ghz_given": self.ghz is not None,
            "tls": self.tls_backend() if any(c.pal == "sgx" for c in configs) else None,
            "cpu": self.cpu(),
            "live_in_same_rounds": True,
            "ratios_in_rounds": list(RATIOS_IN_ROUNDS),
            "measuring_order": [c.name for c in measuring_order(list(configs))],
            "native_again": list(self.native_again(configs)),
            "live_scaling_by_part": True,
            "reference_normalised": self.reference,
            "profile_every": self.profile_interval(),
            "processes": self.processes,
            "replica_of_round": REPLICA_OF_ROUND,
        }

    def profile_interval(self) -> int:
        """The LibOS profile's sampling interval: ``profile_every``, or less so that it
        shares no factor with the batch and is at most the batch (``sampling_interval``)."""
        return sampling_interval(self.batch, self.profile_every)

    def native_again(self, configs: Sequence[Config]) -> tuple[int, ...]:
        """The live counts at which native is measured a second time in every round: the
        lowest and the highest, whose quotient every configuration's live scaling divides
        by (none with one live count, or without native and another configuration)."""
        counts = sorted(set(self.live))
        if len(counts) < 2 or not any(c.native for c in configs) or len(configs) < 2:
            return ()
        return (counts[0], counts[-1])

    def tls_backend(self) -> str:
        return self.tls if self.tls is not None else default_tls_backend()

    def cpu(self) -> int | None:
        """The CPU every measuring process runs on: the highest this process may use
        (the kernel tends to put interrupts and other work on the first)."""
        return max(os.sched_getaffinity(0)) if self.pin else None


def validate(settings: Settings) -> None:
    """Raise ``ValueError`` naming the first setting out of bounds."""
    if not (isinstance(settings.duration, int | float) and math.isfinite(settings.duration)):
        raise ValueError(f"--duration must be a number, got {settings.duration!r}")
    if not 0 < settings.duration <= 3600:
        raise ValueError(f"--duration must be in (0, 3600] seconds, got {settings.duration:g}")
    if not 1 <= settings.batch <= 10_000:
        raise ValueError(f"--batch must be in [1, 10000], got {settings.batch}")
    if not 1 <= settings.rounds <= 1000:
        raise ValueError(f"--rounds must be in [1, 1000], got {settings.rounds}")
    if not 1 <= settings.profile_every <= 10_000:
        raise ValueError(f"--profile-every must be in [1, 10000], got {settings.profile_every}")
    if not (isinstance(settings.processes, int) and 1 <= settings.processes <= MAX_PROCESSES):
        raise ValueError(
            f"--processes must be a whole number in [1, {MAX_PROCESSES}], got "
            f"{settings.processes!r}"
        )
    if settings.processes > settings.rounds:
        raise ValueError(
            f"--processes {settings.processes} is more than --rounds {settings.rounds}: round "
            "r is measured by one process of K, each in turn, so some would measure nothing"
        )
    for n in settings.live:
        if not 0 <= n <= 10_000:
            raise ValueError(f"--live counts must be in [0, 10000], got {n}")
    if settings.ocall_cycles < 0:
        raise ValueError(f"--ocall-cycles must be >= 0, got {settings.ocall_cycles}")
    if settings.ghz is not None and not 0.1 <= settings.ghz <= 10:
        raise ValueError(f"--ghz must be in [0.1, 10], got {settings.ghz}")
    if settings.tls is not None:
        problem = tls_backend_problem(settings.tls)  # ValueError for an unknown name
        if problem is not None:
            raise ValueError(f"--tls {settings.tls} is not available: {problem}")


def finish(entry: Entry, settings: Settings, ghz: float) -> Entry:
    """Add the derived figures (the seed's proportions, the SGX projection) to a result."""
    phases = entry["phases_ns"]
    entry["proportions"] = proportions(
        {p: None if s is None else s["mean"] for p, s in phases.items()}
    )
    cost = projected(entry, ghz, settings.ocall_cycles)
    entry["projected_cycles_per_clone"] = None if cost is None else cost["cycles"][1]
    return entry


@dataclass
class Run:
    """What a benchmark run measured, ready to be written as JSON."""

    settings: Settings
    configs: list[Config]
    ghz: float
    results: list[Entry] = field(default_factory=list)
    interrupted: bool = False
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    steal: float | None = None
    left_out: list[str] = field(default_factory=list)
    """Configurations whose process did not answer after a Ctrl-C, and why."""

    def as_json(self) -> RunData:
        return {
            "version": FORMAT_VERSION,
            "machine": machine(),
            "settings": self.settings.as_json(self.configs, self.ghz),
            "interrupted": self.interrupted,
            "stability": {
                "load_before": None if self.load_before is None else list(self.load_before),
                "load_after": None if self.load_after is None else list(self.load_after),
                "cpu_count": os.cpu_count(),
                "governor": governor(),
                "steal": self.steal,
                "left_out": list(self.left_out),
            },
            "configs": self.results,
        }


More = Callable[["Run", float], bool]
"""Asked after the planned rounds, with the run so far (every live count's results) and
the seconds it has measured: another round?"""


Progress = Callable[[str], None]


def schedule(groups: Sequence[Sequence[_P]], round_no: int, again: Sequence[_P] = ()) -> list[_P]:
    """The order of a round's slices: ``again`` first (native at the lowest and highest
    live counts, ``Settings.native_again``), then configuration by configuration in the
    order of ``groups`` (``measuring_order``), each one's live counts back to back,
    lowest first; odd rounds run the whole order backwards.  So the slices any ratio
    divides (two configurations', or a configuration's two live counts) swap places from
    one round to the next, and a steady drift across a round cancels over two rounds.

    Native's quotient of its two live counts divides every configuration's live scaling,
    and is half of each one's noise on measured runs: its second pair of slices, half a
    round from the first, narrows all of them at the cost of two slices a round."""
    order = [*again, *(p for group in groups for p in group)]
    return order if round_no % 2 == 0 else order[::-1]


def run(
    configs: Sequence[Config],
    settings: Settings,
    *,
    on_slice: Progress | None = None,
    on_stage: Callable[[int], None] | None = None,
    more: More | None = None,
) -> Run:
    """Measure ``configs`` at each live count in ``settings.live``, each pair in
    ``settings.processes`` processes of its own, all in the same rounds (``schedule``):
    round ``r`` measures every pair's replica ``round_slots([r], processes)``, so the rounds stay
    interleaved and every slice of a round comes from the same replica slot.  The
    replicas' results are merged into one entry per pair (``_merge``).

    A configuration's slices at its live counts run back to back, so a slowdown of the
    machine that lasts longer than a second or so hits them alike and cancels in its
    live scaling, as it cancels between configurations in a round (``_stats``).

    After ``settings.rounds`` rounds, ``more`` (if given) is asked whether to run another
    round, again and again (``--until-stable``).

    A KeyboardInterrupt stops the measuring; what was measured so far is returned, with
    ``interrupted`` set.
    """
    validate(settings)
    ghz = settings.ghz if settings.ghz is not None else nominal_ghz()
    outcome = Run(settings, list(configs), ghz, load_before=os.getloadavg())
    times0 = cpu_times()
    cpu = settings.cpu()
    slice_s = settings.duration / settings.rounds
    origin = time.monotonic()
    # Results come out live count by live count; slices are asked configuration by
    # configuration.
    processes: list[_Process] = []
    try:
        if on_stage is not None:
            per_round = len(configs) * len(settings.live) + len(settings.native_again(configs))
            on_stage(per_round * settings.rounds)
        # Set up side by side (nothing is measured yet), then measured one at a time.
        k = settings.processes
        for live in settings.live:
            for config in configs:
                for replica in range(k):
                    process = _Process(config, live, settings, cpu, origin, replica, k)
                    processes.append(process)
                    process.start()
        for process in processes:
            process.wait_ready()
        # (No comprehension in this ``try``: on 3.12+ an exception at some of an inlined
        # comprehension's instructions skips the handlers around it, leaving processes.)
        groups, again = _by_slot(processes, configs, settings)
        started = time.perf_counter()
        round_no = 0
        while round_no < settings.rounds or (
            more is not None
            and more(
                Run(
                    settings,
                    outcome.configs,
                    ghz,
                    _merged(processes, _results(processes), settings, ghz),
                ),
                time.perf_counter() - started,
            )
        ):
            slot = int(round_slots([round_no], k)[0])
            for process in schedule(groups[slot], round_no, again[slot]):
                process.measure(slice_s, round_no)
                if on_slice is not None:
                    on_slice(process.config.name)
            round_no += 1
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        _collect(processes, outcome, settings, ghz)
    outcome.load_after = os.getloadavg()
    outcome.steal = steal_share(times0, cpu_times())
    return outcome


def _by_slot(
    processes: Sequence[_Process], configs: Sequence[Config], settings: Settings
) -> tuple[list[list[list[_Process]]], list[list[_Process]]]:
    """Each replica slot's processes as ``schedule`` takes them: by configuration in the
    measuring order, and native's at the live counts it is measured at again."""
    order, twice = measuring_order(list(configs)), settings.native_again(configs)
    slots = [[p for p in processes if p.replica == slot] for slot in range(settings.processes)]
    groups = [[[p for p in mine if p.config is c] for c in order] for mine in slots]
    return groups, [[p for p in mine if p.config.native and p.live in twice] for mine in slots]


def _results(processes: Sequence[_Process]) -> list[tuple[_Process, Measured]]:
    return [(p, p.result()) for p in processes]  # (``--until-stable``, between rounds)


def _merged(
    processes: Sequence[_Process],
    answers: Sequence[tuple[_Process, Measured]],
    s: Settings,
    ghz: float,
) -> list[Entry]:
    """One finished entry per configuration and live count, its processes' merged."""
    return [finish(merge(parts), s, ghz) for parts in _by_pair(processes, answers)]


def _by_pair(
    processes: Sequence[_Process], answers: Sequence[tuple[_Process, Measured]]
) -> list[list[Measured]]:
    """``answers`` grouped by configuration and live count, in the order of
    ``processes`` (live count by live count, configuration by configuration)."""
    pairs: dict[tuple[int, int], list[Measured]] = {}
    for p in processes:
        pairs.setdefault((p.live, id(p.config)), [])
    for p, measured in answers:
        pairs[(p.live, id(p.config))].append(measured)
    return [m for m in pairs.values() if m]


def _not_collected(processes: Sequence[_Process], done: set[int]) -> list[str]:
    late = [p for p in processes if p.ready and id(p) not in done]
    return [f"{p.name}: its results not collected (Ctrl-C while collecting)" for p in late]


def _collect(processes: list[_Process], outcome: Run, settings: Settings, ghz: float) -> None:
    """Each measured configuration's result, its processes' merged, then every process
    ended.  After a Ctrl-C a process has the rest of its slice and ``_GRACE_S`` to
    answer; one that does not (or fails) is killed and left out, named in a warning, and
    the others' results are kept (a configuration's other processes' too).  A second
    Ctrl-C while collecting kills the processes left: none outlives the run."""
    answers: list[tuple[_Process, Measured]] = []
    done: set[int] = set()  # the processes that answered, or failed to
    try:
        for process in processes:
            if not process.ready:
                continue
            within = _GRACE_S if outcome.interrupted else _ANSWER_S
            try:
                measured = process.result(within)
            except (RuntimeError, RunError) as exc:
                done.add(id(process))
                if not outcome.interrupted:
                    raise
                outcome.left_out.append(str(exc))
                continue
            done.add(id(process))
            if measured.entry["batches"]:
                answers.append((process, measured))
    except KeyboardInterrupt:
        outcome.interrupted = True
        # A second Ctrl-C: the processes not yet asked (and the one being asked) are
        # named, as a process that did not answer is.
        outcome.left_out += _not_collected(processes, done)
    finally:
        try:
            _end(processes, _END_S)
        except KeyboardInterrupt:
            outcome.interrupted = True
        # What answered is kept whatever interrupted the collecting: merged (in memory,
        # milliseconds) and stored in one step, again from the start after a Ctrl-C.
        while True:
            try:
                outcome.results = _merged(processes, answers, settings, ghz)
                break
            except KeyboardInterrupt:
                outcome.interrupted = True
