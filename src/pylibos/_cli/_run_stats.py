"""``pylibos run``'s statistics, taken at exit: printed with ``--stats``, written with
``--json``.

The JSON's format (``RunStats``, ``RUN_FORMAT_VERSION``) and its history are in
``pylibos._schema``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import platform
import signal
import stat
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, TextIO

from .. import __version__
from .._schema import RUN_FORMAT_VERSION, PhaseStats, RunStats
from ..libos import PHASES, Hook, LibOS
from ..pal import Host

# Where the duplicate of standard error goes: above the numbers a program usually uses.
_HIGH_DESCRIPTOR = 100


class Output:
    """The standard error pylibos was started with, kept for the statistics: a duplicate
    of descriptor 2 taken at start (close-on-exec, at a high number) and what file it
    is.  At exit it is written to only if the duplicate is still that file: a program
    that put another file at descriptor 2 (``os.dup2``, close then open) never gets the
    table, and one that closed every descriptor (or reused the duplicate's number) gets
    nothing written anywhere."""

    def __init__(self, wanted: bool = True) -> None:
        # The table's library, imported at start and kept out of the program's sight.
        self.modules: dict[str, Any] = {}
        self.fd: int | None = None
        self.identity: tuple[int, int, int] | None = None
        if not wanted:
            return  # nothing to print: no duplicate for the program to see
        try:
            import fcntl

            try:
                fd = fcntl.fcntl(2, fcntl.F_DUPFD_CLOEXEC, _HIGH_DESCRIPTOR)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # the limit is below the high number
                    raise
                fd = fcntl.fcntl(2, fcntl.F_DUPFD_CLOEXEC, 3)
        except OSError:
            return  # started with descriptor 2 closed: nowhere to print
        self.fd, self.identity = fd, _identity(fd)
        # A child the program forks never prints the statistics (the parent does): it
        # lets the duplicate go, or a daemon child would hold the standard error open
        # after redirecting its own, and whoever reads it would wait for the daemon.
        global _current
        _current = weakref.ref(self)

    def forget(self) -> None:
        """Close the duplicate if it is still ours (in a fork child; once used)."""
        fd, self.fd = self.fd, None
        if fd is not None and _identity(fd) == self.identity:
            with contextlib.suppress(OSError):
                os.close(fd)

    def stream(self) -> TextIO | None:
        """A text stream on the duplicate (not closing it), or None if it is gone or is
        another file now."""
        if self.fd is None or self.identity is None or _identity(self.fd) != self.identity:
            return None
        return open(self.fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False)

    def close(self) -> None:
        """Close the duplicate (a run that never started)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


# The run's ``Output`` whose duplicate a fork child lets go: one hook for the process.
_current: weakref.ref[Output] | None = None


def _forget_in_child() -> None:
    output = _current() if _current is not None else None
    if output is not None:
        output.forget()


os.register_at_fork(after_in_child=_forget_in_child)


def _identity(fd: int) -> tuple[int, int, int] | None:
    """What file a descriptor is: its device, inode (a pipe's or a socket's own) and
    type; None if it is closed."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)


def prepare_output(options: argparse.Namespace) -> Output:
    """What the statistics need at exit, taken before the program runs: the standard
    error's duplicate, and with ``--stats`` the table's library imported and used once
    (so nothing is imported at exit through the program's ``sys.path``)."""
    # The duplicate only where something may be printed at exit: the table, or the
    # error of a JSON that could not be written.
    output = Output(wanted=bool(options.stats or options.json))
    if options.stats:
        sample: RunStats = {  # every line print_stats prints
            "format_version": RUN_FORMAT_VERSION, "kind": "pylibos.run", "pylibos": "",
            "python": "", "config": {"name": "", "pal": "", "events": "", "pool": False},
            "argv": [], "exit_code": 0, "wall_s": 0.0, "threads_created": 1,
            "host_calls": {"send": 1}, "host_calls_total": 1,
            "phases": {"clone": {"count": 1, "mean_ns": 1.0, "median_ns": 1.0, "p95_ns": 1.0,
                                 "sum_ns": 1, "host_calls": 1}},
            "proportions": {"p1": 0.5, "p2": None},
            "profile": {"every": 8, "clones_started": 1, "clones_sampled": 1},
            "ocall_cycles": 1, "projected_host_call_cycles": 1,
        }  # fmt: skip
        print_stats(sample, io.StringIO())
        # Out of ``sys.modules`` until exit, so the program's ``import rich`` finds what it
        # finds under python (its own ``rich.py``, say), not pylibos's.
        output.modules = {n: m for n, m in sys.modules.items() if n.partition(".")[0] == "rich"}
        for name in output.modules:
            del sys.modules[name]
    return output


@dataclass
class RunState:
    """A run under way: what its statistics at exit are taken from."""

    options: argparse.Namespace
    host: Host
    libos: LibOS
    hook: Hook
    started: float
    exit_code: int = 0
    done: bool = False
    pid: int = field(default_factory=os.getpid)
    argv: list[str] = field(default_factory=list)
    # The standard error pylibos was started with: the statistics go there whatever the
    # program made of ``sys.stderr`` and of descriptor 2.
    output: Output = field(default_factory=lambda: Output(wanted=False))


def statistics(state: RunState) -> RunStats:
    """The run's statistics, as written to ``--json``."""
    libos, host, options = state.libos, state.host, state.options
    snapshot = libos.profile.statistics()
    phases: dict[str, PhaseStats] = {
        name: {
            "count": s.count,
            "mean_ns": s.mean_ns,
            "median_ns": s.median_ns,
            "p95_ns": s.p95_ns,
            "sum_ns": s.sum_ns,
            "host_calls": s.host_calls,
        }
        for name in PHASES
        if (s := snapshot.get(name)) is not None
    }
    counted = host.statistics()
    calls = dict(sorted(counted.by_kind.items()))
    total = counted.total
    name = f"{options.pal}/{libos.events}{'+pool' if libos.pool else ''}"
    return {
        "format_version": RUN_FORMAT_VERSION,
        "kind": "pylibos.run",
        "pylibos": __version__,
        "python": platform.python_version(),
        "config": {"name": name, "pal": options.pal, "events": libos.events, "pool": libos.pool},
        "argv": state.argv,
        "exit_code": state.exit_code,
        "wall_s": time.perf_counter() - state.started,
        "threads_created": state.hook.threads_created,
        "host_calls": calls,
        "host_calls_total": total,
        "phases": phases,
        "proportions": snapshot.proportions(),
        "profile": {
            "every": snapshot.every,
            "clones_started": snapshot.started,
            "clones_sampled": snapshot.sampled,
        },
        "ocall_cycles": options.ocall_cycles,
        "projected_host_call_cycles": total * options.ocall_cycles,
    }


def print_stats(data: RunStats, stream: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, width=None if stream.isatty() else 120)
    cycles = data["ocall_cycles"]
    console.print(
        f"pylibos run: {data['config']['name']}, {data['threads_created']} threads created "
        f"through the LibOS, {data['host_calls_total']} host calls, "
        f"exit status {data['exit_code']}"
    )
    table = Table(title="thread creation, per call (the seed's phases)")
    for col in ("phase", "count", "mean µs", "median µs", "p95 µs", "host calls/call"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for name, s in data["phases"].items():
        table.add_row(
            name,
            str(s["count"]),
            f"{s['mean_ns'] / 1000:.1f}",
            f"{s['median_ns'] / 1000:.1f}",
            f"{s['p95_ns'] / 1000:.1f}",
            f"{s['host_calls'] / s['count']:.2f}",
        )
    if data["phases"]:
        console.print(table)
        sampling = data.get("profile")
        if sampling is not None and sampling["every"] != 1:
            console.print(
                f"timed {sampling['clones_sampled']} of {sampling['clones_started']} thread "
                f"starts (one in {sampling['every']}; --profile-every 1 times every one)"
            )
        props = ", ".join(
            f"{k} = {v:.3f}" if v is not None else f"{k} = -"
            for k, v in data["proportions"].items()
        )
        console.print(f"proportions: {props}")
    kinds = ", ".join(f"{k} {v}" for k, v in data["host_calls"].items())
    console.print(f"host calls by kind: {kinds or 'none'}")
    projected = data["projected_host_call_cycles"]
    clone = data["phases"].get("clone")
    per_start = ""
    if clone:
        per_start = (
            f"; {clone['host_calls'] / clone['count'] * cycles:,.0f} cycles per thread start"
        )
    console.print(
        f"projected SGX cost at {cycles:,} cycles per host call: {projected:,} cycles{per_start}"
    )


def _opened_for_writing(path: str) -> TextIO:
    """``path`` opened to be written anew, never waiting: a FIFO nobody reads is refused
    (ENXIO) instead of blocking the exit for good (a Ctrl-C is ignored by then)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    try:
        os.set_blocking(fd, True)
        return open(fd, "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _quiet_ctrl_c() -> None:
    """Ctrl-C ignored from here on: the program's code and exit work are over (under
    python a Ctrl-C now ends nothing), and the statistics are still printed and written."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def at_exit(state: RunState) -> None:
    try:
        _quiet_ctrl_c()
    except KeyboardInterrupt:  # the Ctrl-C came before the handler was replaced
        _quiet_ctrl_c()
    if state.done:
        return
    if os.getpid() != state.pid:
        # A child the program forked, exiting normally: the statistics are the run's,
        # and the LibOS's channels are the parent's too.  Its copies close as it exits.
        return
    state.done = True
    try:
        state.hook.uninstall()
        data = statistics(state)
        # Each output on its own: failing to print (the program closed descriptor 2)
        # loses no JSON, and a JSON that cannot be written still leaves the table.
        problem = None
        if state.options.json:
            try:
                with _opened_for_writing(state.options.json) as f:
                    json.dump(data, f, indent=1)
                    f.write("\n")
            except OSError as exc:
                why = "a FIFO or socket nobody reads" if exc.errno == errno.ENXIO else exc.strerror
                problem = f"ERROR: cannot write {state.options.json}: {why}\n"
        if state.options.stats or problem:
            for pending in (sys.stderr, sys.__stderr__):  # what the program left unwritten
                try:
                    if pending is not None:
                        pending.flush()
                except (OSError, ValueError):
                    pass
            try:
                stream = state.output.stream()
                if stream is None:
                    return  # the standard error pylibos was started with is gone
                with stream:
                    if state.options.stats:
                        sys.modules.update(state.output.modules)  # the program is done
                        print_stats(data, stream)
                    if problem:
                        stream.write(problem)
            except (OSError, ValueError):
                pass  # nowhere left to report to
    finally:
        state.output.forget()  # the duplicate, used
        # Daemon threads of the program may still run, as they do natively at this
        # point; the LibOS is then left to the process's exit rather than pulled from
        # under them.
        if all(t is state.libos.main_thread or not t.is_alive() for t in state.libos.threads()):
            state.libos.shutdown(timeout=1.0)
            state.host.shutdown(timeout=1.0)
