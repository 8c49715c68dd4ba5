"""The seed's micro-benchmark: batches of threads started by the application's statement.

Every configuration times the same statement, ``threading.Thread(target=f).start()``:
``native`` with CPython's own thread start, every LibOS configuration with the LibOS
installed under ``threading`` (``pylibos.libos.install``), so the start runs the LibOS
clone path.  ``start`` is that statement's time; the LibOS profile times the phases of
the clone inside it.  Within the duration, each configuration starts batches of ``batch``
threads; every thread exits at once and the batch is joined before the next starts.
``compare`` interleaves the configurations in rounds (a slice of each per round), so drift
in the machine's speed hits them all alike; the hook is installed only while a LibOS
configuration's slice runs.

Host calls per clone count the whole life of a thread: every host call made while the
batches ran, divided by the threads created (creation, the handshake helper's traffic,
and the release of the thread's event at exit).  Nothing else runs meanwhile: the
LibOS's workers sleep.

Live threads (``--live``) are started the same way, before the batches: daemon threads
asleep on a ``threading.Event`` (under the LibOS each holds its tid, pollable event and
table entry; asleep on the event itself it would re-poll now and then, host calls that are
no measured thread's).  The measured threads are what the statement makes: non-daemon threads.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import resource
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..libos import PHASES, PROPORTIONS, Hook, LibOS, summary
from ..pal import Host, default_tls_backend, open_host, tls_backend_problem
from ._configs import Config
from ._stats import TIMED

FORMAT_VERSION = 3
# Format history:
#   1: first version.
#   2: per-batch samples of every phase (``batches_ns``: each batch's median and mean per
#      clone) and the round of each batch (``batch_rounds``), from which every figure gets a
#      bootstrap interval (``intervals``, ``ratios``); ``targets`` with verdicts; ``stability``
#      (load average before and after, CPU count, frequency governor, warnings);
#      ``projection`` at the low and high ends of the published OCALL cost.  Version 1 files
#      hold no per-batch samples, so no interval can be drawn from them: re-run to compare.
#      Later, compatibly: ``tls`` in ``settings`` (the TLS backend of the sgx
#      configurations) and in each entry (null for native and direct); files without it
#      were measured with mbed TLS.
#   3: ``start``, the application's ``threading.Thread(target=f).start()``, timed for every
#      configuration (in ``phases_ns``, ``batches_ns``, ``intervals``); a LibOS row's phases
#      are those of the clone inside it, and native has none but ``start``.  Ratios to
#      native are of ``start`` (``start ÷ native``); ``projection`` prices ``start``;
#      ``live_scaling`` at the highest live count is that configuration's start (highest ÷
#      lowest live) divided by native's.  Version 2 timed ``LibOS.clone`` against native's
#      ``Thread.start()``, different work.

_JOIN_S = 30.0
_LIVE_WAIT_S = 3600.0


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

    def as_json(self, configs: Sequence[Config], ghz: float) -> dict[str, Any]:
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
        }

    def tls_backend(self) -> str:
        return self.tls if self.tls is not None else default_tls_backend()


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


def nominal_ghz() -> float:
    """The CPU's clock as the kernel reports it (``cpu MHz``), or 2.0 if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return round(float(line.split(":")[1]) / 1000, 3)
    except (OSError, ValueError):
        pass
    return 2.0


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pylibos": __version__,
        "ghz_nominal": nominal_ghz(),
    }


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _noop() -> None:
    return None


def _per_clone(samples: list[int], clones: int) -> list[int]:
    """One figure per clone: a clone in which a phase did not run (no handshake for a
    pooled event) spent 0 in it, so means and the seed's proportions stay per clone."""
    if not samples:
        return samples
    return samples + [0] * (clones - len(samples))


class RunError(Exception):
    """The machine cannot run what was asked (too few descriptors, threads or memory)."""


def ensure_fd_room(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE toward the hard one so ``needed`` fds fit, or raise
    ``RunError`` naming the limits when even the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RunError(
            f"this run needs about {needed} file descriptors and the hard limit is {hard}: "
            "lower --live or --batch, or run fewer configurations"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Subject:
    """One configuration at one live-thread count, set up once and measured in slices."""

    def __init__(self, config: Config, live: int, batch: int, tls: str | None = None) -> None:
        self.config = config
        self.live = live
        self.batch = batch
        self.tls = tls
        self.batches = 0
        self.rss_per_live_kib: float | None = None
        # Each complete batch's median and mean per clone, by phase, and the round it ran
        # in: the samples the bootstrap intervals resample (see ``_stats``).
        self.batch_ns: dict[str, dict[str, list[float]]] = {
            p: {"median": [], "mean": []} for p in TIMED
        }
        self._start_ns: list[int] = []
        self._taken = 0
        self.batch_rounds: list[int] = []

    def setup(self) -> None:
        raise NotImplementedError

    def run_batch(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError

    def take_batch(self) -> dict[str, list[int]]:
        """The per-phase samples of the batch just run (a clone without a phase has none)."""
        raise NotImplementedError

    def run_for(self, seconds: float, round_no: int = 0) -> None:
        """Whole batches until ``seconds`` have passed; at least one."""
        end = time.perf_counter() + seconds
        while True:
            self.run_batch()
            self.batches += 1
            self._record_batch(round_no)
            if time.perf_counter() >= end:
                return

    def _record_batch(self, round_no: int) -> None:
        samples = self.take_batch()
        clones = len(samples.get("start", ()))
        if not clones:
            return
        figures = {}
        for phase in TIMED:
            values = _per_clone(samples.get(phase, []), clones)
            if values:
                figures[phase] = (float(statistics.median(values)), statistics.fmean(values))
            else:
                figures[phase] = (0.0, 0.0)
        for phase, (median, mean) in figures.items():
            self.batch_ns[phase]["median"].append(median)
            self.batch_ns[phase]["mean"].append(mean)
        self.batch_rounds.append(round_no)

    def _start_batch(self) -> None:
        """The measured statement, ``batch`` times; then the batch is joined."""
        threads = []
        clock = time.perf_counter_ns
        times = self._start_ns
        for _ in range(self.batch):
            t0 = clock()
            t = threading.Thread(target=_noop)
            t.start()
            times.append(clock() - t0)
            threads.append(t)
        for t in threads:
            t.join(_JOIN_S)
            if t.is_alive():
                raise RuntimeError(f"{self.config.name}: a thread did not end in {_JOIN_S} s")

    def _take_starts(self) -> list[int]:
        new = self._start_ns[self._taken :]
        self._taken = len(self._start_ns)
        return new

    def _measure_live(self, start_live: Callable[[], None]) -> None:
        if not self.live:
            return
        gc.collect()
        before = rss_kib()
        start_live()
        gc.collect()
        self.rss_per_live_kib = (rss_kib() - before) / self.live

    def _base(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": c.name,
            "pal": c.pal,
            "events": c.events,
            "pool": c.pool,
            "tls": None,
            "live": self.live,
            "batches": self.batches,
            "rss_per_live_thread_kib": self.rss_per_live_kib,
            "batch_rounds": self.batch_rounds[: self._complete()],
        }

    def _complete(self) -> int:
        """Batches recorded in every list (a Ctrl-C inside ``_record_batch`` can leave
        the last one recorded in some lists only)."""
        lists = [self.batch_rounds] + [v for per in self.batch_ns.values() for v in per.values()]
        return min(len(v) for v in lists)

    def _batches_json(self, phases: dict[str, Any]) -> dict[str, Any]:
        """Per-batch figures of the phases that ran at all (a phase absent from the whole
        run is None, as in ``phases_ns``)."""
        return {
            p: None
            if phases[p] is None
            else {
                k: [round(v, 1) for v in vs[: self._complete()]]
                for k, vs in self.batch_ns[p].items()
            }
            for p in TIMED
        }


class NativeSubject(Subject):
    def setup(self) -> None:
        self._release = threading.Event()
        self._live: list[threading.Thread] = []

        def start_live() -> None:
            for _ in range(self.live):
                t = threading.Thread(target=self._release.wait, args=(_LIVE_WAIT_S,), daemon=True)
                t.start()
                self._live.append(t)

        try:
            self._measure_live(start_live)
            self.run_batch()  # warm-up, not recorded
        except BaseException:
            self.teardown()
            raise
        self._start_ns.clear()
        self._taken = 0

    def take_batch(self) -> dict[str, list[int]]:
        return {"start": self._take_starts()}

    def run_batch(self) -> None:
        self._start_batch()

    def teardown(self) -> None:
        self._release.set()
        for t in self._live:
            t.join(_JOIN_S)

    def result(self) -> dict[str, Any]:
        out = self._base()
        out["threads"] = len(self._start_ns)
        out["phases_ns"] = {p: None for p in TIMED}
        out["phases_ns"]["start"] = summary(self._start_ns)
        out["batches_ns"] = self._batches_json(out["phases_ns"])
        out["host_calls_per_clone"] = 0.0
        out["host_calls_by_kind_per_clone"] = {}
        return out


class LibOSSubject(Subject):
    host: Host
    libos: LibOS

    def setup(self) -> None:
        c = self.config
        assert c.pal is not None and c.events is not None
        options: dict[str, Any] = {}
        if c.pal == "sgx":
            # Room for the live threads, a batch, the LibOS's workers and handshake
            # helpers, as a manifest raises sgx.max_threads for a program that needs it.
            options["max_threads"] = max(256, self.live + 2 * self.batch + 16)
            options["tls"] = self.tls
        self.host = open_host(c.pal, **options)
        try:
            self.libos = LibOS(self.host, c.events, c.pool)
        except BaseException:
            self.host.shutdown()
            raise
        self._live: list[threading.Thread] = []
        self._release = threading.Event()
        self._hook = Hook(self.libos)

        def start_live() -> None:
            with self._installed():
                for _ in range(self.live):
                    t = threading.Thread(target=self._sleep, daemon=True)
                    t.start()
                    self._live.append(t)

        try:
            self._measure_live(start_live)
            self._fill_pool()
            self.run_batch()  # warm-up, not recorded
        except BaseException:
            self.teardown()
            raise
        self.libos.profile.reset()
        self._start_ns.clear()
        self._taken = 0
        self._ns: dict[str, list[int]] = {p: [] for p in TIMED}
        self._calls0 = self.host.calls_total - self.libos.worker_host_calls()
        self._kinds0 = Counter(self.host.calls)
        self._workers0 = self.libos.worker_host_calls()

    @contextlib.contextmanager
    def _installed(self) -> Iterator[None]:
        """The LibOS under ``threading`` for a slice of this configuration only: the
        configurations take turns in one process."""
        self._hook.install()
        try:
            yield
        finally:
            self._hook.uninstall()

    def take_batch(self) -> dict[str, list[int]]:
        # Moved out of the profile batch by batch, so it never holds more than one batch.
        profile = self.libos.profile
        new = {p: profile.samples(p) for p in PHASES}
        new["start"] = self._take_starts()
        profile.reset()
        for p, values in new.items():
            self._ns[p] += values
        return new

    def _sleep(self) -> None:
        # A LibOS thread (tid, event, table entry), asleep on a threading.Event: asleep on
        # its pollable event it would re-poll every RECHECK_S seconds, host calls that
        # are no measured thread's.
        self._release.wait(_LIVE_WAIT_S)

    def _fill_pool(self) -> None:
        """With a pool, leave one event per thread of a batch in it: a batch's threads
        all alive at once then never make a new one, however the threads interleave."""
        if not self.config.pool:
            return
        go = threading.Event()
        try:
            held = [self.libos.clone(go.wait, _JOIN_S) for _ in range(self.batch)]
        finally:
            go.set()
        for t in held:
            t.join(_JOIN_S)

    def run_batch(self) -> None:
        with self._installed():
            self._start_batch()

    def teardown(self) -> None:
        self._hook.uninstall()
        self._release.set()
        for t in self._live:
            t.join(_JOIN_S)
        self.libos.shutdown()
        self.host.shutdown()

    def result(self) -> dict[str, Any]:
        out = self._base()
        out["tls"] = self.host.tls
        clones = len(self._ns["start"])
        out["threads"] = clones
        out["phases_ns"] = {p: summary(_per_clone(self._ns[p], clones)) for p in TIMED}
        out["batches_ns"] = self._batches_json(out["phases_ns"])
        threads = max(out["threads"], 1)
        calls = self.host.calls_total - self.libos.worker_host_calls() - self._calls0
        out["host_calls_per_clone"] = calls / threads
        kinds = Counter(self.host.calls)
        kinds.subtract(self._kinds0)
        # The idle workers' calls are their periodic polls.
        kinds["poll"] -= self.libos.worker_host_calls() - self._workers0
        out["host_calls_by_kind_per_clone"] = {
            k: v / threads for k, v in sorted(kinds.items()) if v
        }
        return out


def make_subject(config: Config, live: int, batch: int, tls: str | None = None) -> Subject:
    if config.native:
        return NativeSubject(config, live, batch)
    return LibOSSubject(config, live, batch, tls)


def _proportion(part: dict[str, float] | None, whole: dict[str, float] | None) -> float | None:
    if part is None or whole is None or not whole["mean"]:
        return None
    return part["mean"] / whole["mean"]


def finish(entry: dict[str, Any], settings: Settings, ghz: float) -> dict[str, Any]:
    """Add the derived figures (the seed's proportions, the SGX projection) to a result."""
    phases = entry["phases_ns"]
    entry["proportions"] = {
        name: _proportion(phases[part], phases[whole])
        for name, (part, whole) in PROPORTIONS.items()
    }
    start = phases["start"]
    entry["projected_cycles_per_clone"] = (
        None
        if start is None
        else start["median"] * ghz + entry["host_calls_per_clone"] * settings.ocall_cycles
    )
    return entry


@dataclass
class Run:
    """What a benchmark run measured, ready to be written as JSON."""

    settings: Settings
    configs: list[Config]
    ghz: float
    results: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None

    def as_json(self) -> dict[str, Any]:
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
            },
            "configs": self.results,
        }


def governor() -> str | None:
    """The CPU frequency governor of cpu0, where the kernel exposes it."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            return f.read().strip() or None
    except OSError:
        return None


More = Callable[["Run", int, float], bool]
"""Asked after a live count's planned rounds, with the run so far (that live count's
results included), the live count and the seconds it has measured: another round?"""


Progress = Callable[[str], None]


def run(
    configs: Sequence[Config],
    settings: Settings,
    *,
    on_slice: Progress | None = None,
    on_stage: Callable[[int, int], None] | None = None,
    more: More | None = None,
) -> Run:
    """Measure ``configs`` at each live count in ``settings.live``, interleaved in rounds.

    After a live count's ``settings.rounds`` rounds, ``more`` (if given) is asked whether to
    run another round of every configuration, again and again (``--until-stable``).

    A KeyboardInterrupt stops the measuring; what was measured so far is returned, with
    ``interrupted`` set.
    """
    validate(settings)
    ghz = settings.ghz if settings.ghz is not None else nominal_ghz()
    outcome = Run(settings, list(configs), ghz, load_before=os.getloadavg())
    slice_s = settings.duration / settings.rounds
    # Every configuration of a live count is set up before any is measured: make room
    # for all their descriptors at once (a pipe event holds two, its listener a third
    # while it is made), or say plainly that the limit is too low.
    libos_configs = sum(1 for c in configs if not c.native)
    needed = libos_configs * (2 * max(settings.live) + 3 * settings.batch + 32) + 256
    ensure_fd_room(needed)
    for live in settings.live:
        subjects: list[Subject] = []
        try:
            if on_stage is not None:
                on_stage(live, len(configs) * settings.rounds)
            for config in configs:
                subject = make_subject(config, live, settings.batch, settings.tls)
                subject.setup()
                subjects.append(subject)
            started = time.perf_counter()
            round_no = 0
            while round_no < settings.rounds or (
                more is not None
                and more(
                    Run(
                        settings,
                        outcome.configs,
                        ghz,
                        outcome.results + [finish(s.result(), settings, ghz) for s in subjects],
                    ),
                    live,
                    time.perf_counter() - started,
                )
            ):
                for subject in subjects:
                    subject.run_for(slice_s, round_no)
                    if on_slice is not None:
                        on_slice(subject.config.name)
                round_no += 1
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            for subject in subjects:
                if subject.batches:
                    outcome.results.append(finish(subject.result(), settings, ghz))
            for subject in subjects:
                # A second Ctrl-C during teardown must not leave the others running.
                while True:
                    try:
                        subject.teardown()
                        break
                    except KeyboardInterrupt:
                        outcome.interrupted = True
        if outcome.interrupted:
            break
    outcome.load_after = os.getloadavg()
    return outcome
