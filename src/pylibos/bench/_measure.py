"""Running the seed's micro-benchmark: configurations interleaved in rounds, each measured
apart, and the run's settings and machine.

``compare`` interleaves the configurations in rounds (a slice of each per round), so
drift in the machine's speed hits them all alike.  Each configuration at each live count
is measured in a process of its own (``_worker``), and only one process measures at a
time: the others wait on their pipe, their threads and their LibOS's workers asleep.  A
process's thread start slows with the number of threads the process holds, so measured
in one process every configuration at 1,000 live would start its threads beside all the
configurations' live threads, not its own 1,000; its garbage collector would walk all of
their objects; and a run's figures would depend on which configurations it measured.

Every measuring process runs on one CPU (unless ``--all-cpus``).  A thread start is a
hand-off: the new thread must run before ``start()`` returns.  Left to the kernel, the
new thread often wakes on the other CPU, and whether that CPU is idle (on a virtual
machine a halted virtual CPU, woken through the hypervisor), busy with another process,
or polling decides the cost: on the shared 2-core machine this was measured on, native's
batch medians went from 43 µs to 1.5 ms within one run, and 6 s in every 10 of one
configuration's batches were stolen by the hypervisor.  On one CPU the new thread runs
when the creator waits for it, the same way every time; the same run's batch medians then
vary by about 10% (``docs/benchmark.md``, "Measuring apart").
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import IO, Any

from .._schema import FORMAT_VERSION, Entry, RunData, SettingsJSON
from .._signals import sigint_deferred
from ..libos import proportions
from ..pal import default_tls_backend, tls_backend_problem
from ._configs import Config
from ._machine import RunError, cpu_times, governor, steal_share
from ._machine import ensure_fd_room as ensure_fd_room
from ._machine import machine as machine
from ._machine import nominal_ghz as nominal_ghz
from ._machine import rss_kib as rss_kib
from ._stats import projected

_SETUP_S = 900.0
"""Bound on setting up a configuration (1,000 live sgx/pipe threads are 1,000 handshakes,
beside the other configurations' set-up on one CPU)."""
_ANSWER_S = 300.0
"""Bound on a measuring process's answer beyond the slice it measures."""
_GRACE_S = 5.0
"""After a Ctrl-C: bound on a measuring process's answer beyond the end of the slice it
is measuring.  One that does not answer is killed and its results left out."""
_END_S = 3.0
"""Bound on the measuring processes' tearing down, together, before they are killed."""


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
        }

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


class _Process:
    """A measuring process (``_worker``) for one configuration at one live count.

    Every request carries a number and its answer the same one; an answer to an earlier
    request (a slice Ctrl-C interrupted the wait for) is read and dropped, so a Ctrl-C at
    any point never pairs a request with another's answer.

    Built without starting the process: ``start`` starts it, so the caller can keep the
    object where its ``kill`` is sure to run before a Ctrl-C can leave a process unknown."""

    def __init__(self, config: Config, live: int, settings: Settings, cpu: int | None) -> None:
        self.config = config
        self._setup: dict[str, Any] = {
            "config": config.name, "live": live, "batch": settings.batch,
            "tls": settings.tls, "cpu": cpu,
        }  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._sent = 0  # the number of the last request
        self._busy_until = 0.0  # when the process should be done with what it was asked
        self._deadline = 0.0  # for the last request's answer
        self._unread = b""  # answers' bytes read from the pipe, not yet taken
        self.ready = False

    def start(self) -> None:
        """Start the process and send it its set-up; ``kill`` ends it whatever happens."""
        with sigint_deferred():
            # Closed in ``kill``, once the process has ended.
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
            # A session of its own: Ctrl-C at the terminal is the parent's to handle.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pylibos.bench._worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,
            )
        self._send(self._setup, 0.0, _SETUP_S)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _send(self, request: dict[str, Any], work: float, within: float) -> None:
        """Send ``request``, which should take the process ``work`` seconds once it is done
        with the requests before, and be answered ``within`` seconds of that."""
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        with sigint_deferred():
            # Counted before it is written: a request written is never numbered again.
            self._sent += 1
            request["id"] = self._sent
            # A request waits behind the one before (a slice still running).
            self._busy_until = max(self._busy_until, time.monotonic()) + work
            self._deadline = self._busy_until + within
            try:
                # One write of one short line: the whole request or none of it.
                os.write(fd, json.dumps(request).encode() + b"\n")
                broken = False
            except BrokenPipeError:
                broken = True
        if broken:
            self._failed()

    def _answer(self) -> dict[str, Any]:
        """The answer to the last request, within its deadline."""
        while True:
            answer: dict[str, Any] = json.loads(self._line())
            if answer.get("id") == self._sent:
                break
        if "error" in answer:
            kind = RunError if answer.get("kind") == "RunError" else RuntimeError
            raise kind(f"{self.config.name}: {answer['error']}")
        return answer

    def _line(self) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._unread:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(f"{self.config.name}: the measuring process did not answer")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                with sigint_deferred():
                    chunk = os.read(fd, 65536)
                    self._unread += chunk
                if not chunk:
                    self._failed()
        with sigint_deferred():
            line, _, self._unread = self._unread.partition(b"\n")
        return line

    def _failed(self) -> None:
        assert self._proc is not None and self._stderr is not None
        self.wait(time.monotonic() + _END_S)
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        self.kill()
        raise RuntimeError(
            f"{self.config.name}: the measuring process ended (exit code {self._proc.returncode})"
            + (": " + " / ".join(tail) if tail else "")
        )

    def wait_ready(self) -> None:
        self._answer()
        self.ready = True

    def measure(self, seconds: float, round_no: int) -> None:
        self._send({"op": "slice", "seconds": seconds, "round": round_no}, seconds, _ANSWER_S)
        self._answer()

    def result(self, within: float = _ANSWER_S) -> Entry:
        """The configuration's results, asked once the process is done with the requests
        before (a slice a Ctrl-C interrupted the wait for) and answered ``within`` seconds
        of that."""
        self._send({"op": "result"}, 0.0, within)
        answer = self._answer()
        if not isinstance(answer.get("result"), dict):
            raise RuntimeError(f"{self.config.name}: the measuring process answered {answer!r}")
        entry: Entry = answer["result"]
        return entry

    def hang_up(self) -> None:
        """Close the process's stdin: at the end of its requests it tears down and exits."""
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()

    def wait(self, deadline: float) -> None:
        """Wait for the process to end, until ``deadline`` (``time.monotonic``) at most."""
        if self._proc is not None:
            with suppress(subprocess.TimeoutExpired):
                self._proc.wait(max(0.0, deadline - time.monotonic()))

    def kill(self, grace: float = 0.0) -> None:
        """End the process (given ``grace`` seconds to end of itself), reap it and close its
        pipes.  Kept from the start of ``start``: nothing is left whatever it interrupted."""
        _end([self], grace)

    def _reap(self) -> None:
        """Kill the process if it still runs, wait for it, close its streams; a Ctrl-C
        meanwhile is raised once it is reaped."""
        self.ready = False  # nothing more to ask of it (``_collect`` skips it)
        interrupted = False
        proc = self._proc
        if proc is not None:
            while True:
                try:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    break
                except KeyboardInterrupt:
                    interrupted = True
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        if self._stderr is not None:
            self._stderr.close()
        if interrupted:
            raise KeyboardInterrupt


def _end(processes: Sequence[_Process], grace: float) -> None:
    """End ``processes`` together: each one's stdin closed (it tears down and exits), all
    waited for until one shared deadline ``grace`` seconds away, then those still running
    killed; every one reaped, whatever interrupts this."""
    try:
        for process in processes:
            process.hang_up()
        deadline = time.monotonic() + grace
        for process in processes:
            process.wait(deadline)
    finally:
        interrupted = False
        for process in processes:
            while True:  # ``_reap`` may be run again: a Ctrl-C anywhere in it restarts it
                try:
                    process._reap()
                    break
                except KeyboardInterrupt:
                    interrupted = True
        if interrupted:
            raise KeyboardInterrupt


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
    """Measure ``configs`` at each live count in ``settings.live``, interleaved in rounds,
    each configuration in a process of its own.

    After a live count's ``settings.rounds`` rounds, ``more`` (if given) is asked whether to
    run another round of every configuration, again and again (``--until-stable``).

    A KeyboardInterrupt stops the measuring; what was measured so far is returned, with
    ``interrupted`` set.
    """
    validate(settings)
    ghz = settings.ghz if settings.ghz is not None else nominal_ghz()
    outcome = Run(settings, list(configs), ghz, load_before=os.getloadavg())
    times0 = cpu_times()
    cpu = settings.cpu()
    slice_s = settings.duration / settings.rounds
    for live in settings.live:
        processes: list[_Process] = []
        try:
            if on_stage is not None:
                on_stage(live, len(configs) * settings.rounds)
            # Set up side by side (nothing is measured yet), then measured one at a time.
            for config in configs:
                process = _Process(config, live, settings, cpu)
                processes.append(process)
                process.start()
            for process in processes:
                process.wait_ready()
            started = time.perf_counter()
            round_no = 0
            while round_no < settings.rounds or (
                more is not None
                and more(
                    Run(
                        settings,
                        outcome.configs,
                        ghz,
                        outcome.results + [finish(p.result(), settings, ghz) for p in processes],
                    ),
                    live,
                    time.perf_counter() - started,
                )
            ):
                for process in processes:
                    process.measure(slice_s, round_no)
                    if on_slice is not None:
                        on_slice(process.config.name)
                round_no += 1
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            _collect(processes, outcome, settings, ghz)
        if outcome.interrupted:
            break
    outcome.load_after = os.getloadavg()
    outcome.steal = steal_share(times0, cpu_times())
    return outcome


def _collect(processes: list[_Process], outcome: Run, settings: Settings, ghz: float) -> None:
    """Each measured configuration's result, then every process ended.  After a Ctrl-C a
    process has the rest of its slice and ``_GRACE_S`` to answer; one that does not (or
    fails) is killed and left out, named in a warning, and the others' results are kept.
    A second Ctrl-C while collecting kills the processes left: none outlives the run."""
    try:
        for process in processes:
            if not process.ready:
                continue
            within = _GRACE_S if outcome.interrupted else _ANSWER_S
            try:
                entry = process.result(within)
            except (RuntimeError, RunError) as exc:
                if not outcome.interrupted:
                    raise
                outcome.left_out.append(str(exc))
                continue
            if entry["batches"]:
                outcome.results.append(finish(entry, settings, ghz))
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        try:
            _end(processes, _END_S)
        except KeyboardInterrupt:
            outcome.interrupted = True
