"""What a run records of the machine it ran on: CPU, clock, governor, load, steal."""

from __future__ import annotations

import os
import platform

from .. import __version__
from ._schema import Machine


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
