"""The machine a run measures on: what it records of it (CPU, clock, governor, steal), what
it needs of it (descriptors), and how busy other processes keep the measuring CPU."""

from __future__ import annotations

import os
import platform
import resource
import time

from .. import __version__
from .._schema import Machine


class RunError(Exception):
    """The machine cannot run what was asked (too few descriptors, threads or memory)."""


def fd_need(live: int, batch: int) -> int:
    """Descriptors one configuration may hold at once: a pipe event holds two, its
    listener a third while it is made; the LibOS's workers and the interpreter a few."""
    return 2 * live + 3 * batch + 288


def ensure_fd_room(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE toward the hard one so ``needed`` fds fit, or raise
    ``RunError`` naming the limits when even the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RunError(
            f"this run needs about {needed} file descriptors and the hard limit is {hard}: "
            "lower --live or --batch"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


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


def machine() -> Machine:
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


def governor() -> str | None:
    """The CPU frequency governor of cpu0, where the kernel exposes it."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            return f.read().strip() or None
    except OSError:
        return None


def cpu_times() -> list[int] | None:
    """The machine's CPU time by kind (``/proc/stat``'s first line), or None."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """The share of the CPUs' time between two readings that the hypervisor gave to
    other machines (``steal``, the eighth field), or None where it is not shown."""
    if before is None or after is None or len(before) < 8 or len(after) < 8:
        return None
    # The time of every kind but the guests' (already in user).
    spent = [b - a for a, b in zip(before[:8], after[:8], strict=True)]
    total = sum(spent)
    return spent[7] / total if total > 0 else None


BUSY_LIMIT = 0.10
"""A slice during which other processes took more than this share of the measuring CPU
is dropped and measured again."""
BUSY_RETRIES = 2
"""Times a slice is measured again at most; the last one is kept whatever it met."""
_MIN_SLICE_S = 0.2
"""Shorter slices are kept: the kernel counts CPU time in ticks (10 ms on most), too coarse
to tell another process's share of them."""

CpuUse = tuple[float, float, float]
"""(seconds the CPU was busy, seconds of it this process used, wall seconds)."""


def cpu_use(cpu: int | None) -> CpuUse | None:
    """How busy ``cpu`` has been and how much of it this process took, or None (no CPU,
    or no ``/proc/stat`` line for it)."""
    if cpu is None:
        return None
    try:
        with open("/proc/stat") as f:
            line = next((x for x in f if x.startswith(f"cpu{cpu} ")), None)
    except OSError:
        return None
    if line is None:
        return None
    ticks = [int(x) for x in line.split()[1:8]]
    # user, nice, system, irq, softirq (not idle, iowait): busy.
    busy = (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return busy, usage.ru_utime + usage.ru_stime, time.monotonic()


def others_share(before: CpuUse | None, after: CpuUse | None) -> float | None:
    """The share of the wall time between two readings that other processes (the
    hypervisor's steal aside) took of the CPU this process runs on alone; None where it
    cannot be told.  This process's threads all run on that CPU, so what else the CPU
    was busy with was another process's."""
    if before is None or after is None:
        return None
    wall = after[2] - before[2]
    if wall < _MIN_SLICE_S:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others) / wall
