"""One run of a workload in a process of its own: its command line, its time, its result
line and (under the LibOS) the statistics ``pylibos run`` wrote.

Every child runs in a session of its own, so a Ctrl-C at the terminal reaches only this
process, which kills the child's whole process group and reaps it before the
KeyboardInterrupt goes on.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .._schema import RUN_FORMAT_VERSION, RunStats, keys
from .._signals import sigint_deferred
from ..bench._configs import Config

_STDERR_TAIL = 5  # lines of a failed child's stderr kept in its error
_MISSING_HINT = " (pip install -e '.[workloads]' installs the libraries the workloads use)"


class RunFailed(Exception):
    """One child run did not produce a result (its message says why)."""


@dataclass(frozen=True)
class Outcome:
    """What one child run gave."""

    result: str
    wall_s: float
    cpu_s: float
    stats: RunStats | None  # pylibos run's JSON; None for native


def command(config: Config, script: Path, size: float | None, stats_path: str) -> list[str]:
    """The child's command line: plain ``python script.py`` natively, else ``pylibos run``."""
    program = [str(script)] + ([] if size is None else ["--size", repr(size)])
    if config.native:
        return [sys.executable, *program]
    assert config.pal is not None and config.events is not None
    libos = ["--pal", config.pal, "--events", config.events]
    if config.pool:
        libos.append("--pool")
    return [sys.executable, "-m", "pylibos", "run", *libos, "--json", stats_path, "--", *program]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole process group and reap it; a second Ctrl-C meanwhile waits."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    interrupted = False
    while True:
        try:
            proc.communicate()
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tail(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    return "; its stderr ends: " + " | ".join(ln.strip() for ln in lines[-_STDERR_TAIL:])


def _status(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name}"
    return f"exited with status {code}"


def _read_stats(path: str) -> RunStats:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RunFailed("pylibos run wrote no JSON") from None
    except (OSError, ValueError) as exc:
        raise RunFailed(f"pylibos run's JSON cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise RunFailed("pylibos run's JSON is not an object")
    if data.get("format_version") != RUN_FORMAT_VERSION:
        raise RunFailed(
            f"pylibos run's JSON has format version {data.get('format_version')!r}; "
            f"this pylibos reads version {RUN_FORMAT_VERSION}"
        )
    missing = sorted(keys(RunStats)[0] - data.keys())
    if missing:
        raise RunFailed(f"pylibos run's JSON lacks {', '.join(map(repr, missing))}")
    return cast(RunStats, data)  # its version and keys checked just above


def run_once(
    config: Config, script: Path, size: float | None, timeout_s: float, scratch: str
) -> Outcome:
    """Run ``script`` once under ``config`` in a process of its own; ``RunFailed`` says why
    there is no result.  A KeyboardInterrupt kills the child and is re-raised."""
    stats_path = os.path.join(scratch, "run.json")
    if os.path.exists(stats_path):
        os.unlink(stats_path)
    argv = command(config, script, size, stats_path)
    proc: subprocess.Popen[bytes] | None = None
    cpu0 = _cpu_children()
    t0 = time.perf_counter()
    try:
        with sigint_deferred():
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=script.parent,
                start_new_session=True,
            )
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise RunFailed(
                f"did not finish within {timeout_s:g} s and was killed (a hang, or raise --timeout)"
            ) from None
        wall = time.perf_counter() - t0
    except BaseException:
        if proc is not None and proc.returncode is None:
            _kill(proc)
        raise
    cpu = _cpu_children() - cpu0
    if proc.returncode != 0:
        hint = _MISSING_HINT if b"ModuleNotFoundError" in stderr else ""
        raise RunFailed(f"{_status(proc.returncode)}{_tail(stderr)}{hint}")
    lines = [ln.strip() for ln in stdout.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise RunFailed(f"printed no result line{_tail(stderr)}")
    stats = None if config.native else _read_stats(stats_path)
    return Outcome(lines[-1], wall, cpu, stats)
