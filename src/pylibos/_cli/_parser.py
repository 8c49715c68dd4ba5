"""The parser of every subcommand but ``run`` (which has its own: ``_run.build_parser``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import __version__
from ..libos import SAMPLE_EVERY
from ._bench import cmd_bench, cmd_compare
from ._options import (
    JSON,
    RENDERING,
    Option,
    add_options,
    configs,
    ghz,
    integer,
    measuring,
    ocall_cycles,
    positive_float,
    positive_integer,
)
from ._report import cmd_report
from ._workloads import cmd_workloads

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class _Command:
    """A subcommand: its line in ``pylibos --help``, its own help, options and function.
    Without a function it is only listed (``run`` parses its own arguments)."""

    name: str
    summary: str
    description: str = ""
    options: tuple[Option, ...] = ()
    func: Callable[[argparse.Namespace, Console], int] | None = None


NO_REFERENCE = Option(
    "--no-reference",
    action="store_true",
    help="take the ratios between configurations and live scaling on times as measured, "
    "not normalised by each batch's reference workload (which is timed either way; see "
    "docs/benchmark.md)",
)


PROFILE_EVERY = Option(
    "--profile-every",
    metavar="N",
    type=positive_integer,
    default=SAMPLE_EVERY,
    help="time the LibOS's phases in one thread start in N at most (the largest such N "
    "sharing no factor with --batch: 7 with batches of 100); start is timed for every "
    f"start, its mean carrying the profile's cost once in N (default {SAMPLE_EVERY}; 1: "
    "every start)",
)


def _processes(text: str) -> int:
    """``--processes``: a whole number in [1, MAX_PROCESSES].  Bad input is one line,
    ``ERROR: ...``, and exit code 2, as argparse's own errors exit."""
    from ..bench._measure import MAX_PROCESSES

    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_PROCESSES:
        print(
            f"ERROR: --processes must be a whole number in [1, {MAX_PROCESSES}], got {text!r}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return value


def _commands() -> list[_Command]:
    from ..bench import valid_names
    from ..bench._measure import DEFAULT_PROCESSES, MAX_PROCESSES
    from ..workloads import DEFAULT_TIMEOUT_S

    # fmt: off
    compare = _Command(
        "compare",
        "the main job: the seed's benchmark for several configurations side by side",
        "Runs the seed's thread-creation micro-benchmark for several configurations, "
        "interleaved in rounds, and prints them side by side with ratios to sgx/pipe and to "
        "native, host calls per clone and a projected SGX cost.",
        (configs(), *measuring(duration=4.4, live=(1, 1000), rounds=22),
         Option("--until-stable", metavar="W", type=positive_float,
                help="after the planned rounds, keep adding interleaved rounds until every "
                "target's 95%% interval spans at most W of its value (0.05: 5%%), or "
                "--budget ends; with no target among the configurations, every clone "
                "median's interval"),
         Option("--budget", metavar="S", type=positive_float, default=60.0,
                help="with --until-stable: seconds of measuring per live count after which "
                "no further round starts (default 60)"),
         Option("--processes", metavar="K", type=_processes, default=None,
                help="measuring processes per configuration and live count, each set up "
                "on its own (hash seed, memory layout, thread stacks); the K take turns "
                "round by round, and every 95%% interval holds the spread "
                f"between processes (1 to {MAX_PROCESSES}, at most --rounds; default "
                f"{DEFAULT_PROCESSES}, or --rounds if fewer; see docs/benchmark.md)"),
         NO_REFERENCE, PROFILE_EVERY, *RENDERING),
        cmd_compare,
    )
    bench = _Command(
        "bench",
        "the seed's benchmark for one configuration",
        "Creates batches of threads through LibOS.clone for the duration and prints the "
        "seed's table: per-phase means, p1, p2, p3.",
        (Option("--config", metavar="NAME", required=True,
                help=f"the configuration: {', '.join(valid_names())}"),
         *measuring(duration=5.0, live=(0,)), NO_REFERENCE, PROFILE_EVERY, *RENDERING),
        cmd_bench,
    )
    run = _Command(
        "run", "run an unmodified Python program under the LibOS (see pylibos run --help)"
    )
    report = _Command(
        "report",
        "re-render a saved run (JSON) as tables, Markdown or a plot, or compare two",
        "Reads the JSON a bench, compare or workloads run wrote and renders it again. With "
        "--vs, sets two bench or compare runs side by side: each phase median in A and in B, "
        "B ÷ A with its 95%% interval, the same divided by native's B ÷ A (the machine's "
        "drift between the runs), and 'no significant change' where that interval holds 1.",
        (Option("results", metavar="A.json", help="a run's JSON"),
         Option("--vs", metavar="B.json", help="a second run to compare with the first"),
         Option("--raw", action="store_true",
                help="with --vs: judge each figure by B ÷ A as measured, the machine's "
                "drift not removed"),
         Option("--no-reference", action="store_true",
                help="take the run's ratios and live scaling on times as measured, not "
                "normalised by each batch's reference workload, whatever the run chose"),
         *RENDERING),
        cmd_report,
    )
    workloads = _Command(
        "workloads",
        "real programs natively and under every configuration, each run its own process",
        "Runs each workload (an ordinary Python program printing one result line) natively "
        "and under pylibos run for each configuration, interleaved round by round; checks "
        "every result line against native's; prints median wall time, ratios, threads "
        "created, host calls and the projected SGX time per workload and configuration.",
        (Option("--only", metavar="NAMES",
                help="comma-separated workloads (default: every *.py in the workloads "
                "folder)"),
         configs(", native among them"),
         Option("--repeat", metavar="N", type=integer, default=3,
                help="runs of each workload per configuration, one per round (default 3)"),
         Option("--size", metavar="S", type=positive_float,
                help="passed to every workload as --size S: its work relative to the "
                "default (default: not passed, each workload's own default)"),
         Option("--timeout", metavar="S", type=positive_float, default=DEFAULT_TIMEOUT_S,
                help="seconds one run may take before it is killed and reported as failed "
                f"(default {DEFAULT_TIMEOUT_S:g})"),
         Option("--dir", metavar="D",
                help="folder of workload programs (default: benchmarks/workloads of the "
                "source tree)"),
         ocall_cycles(), ghz("cycles-to-seconds in the projection"), JSON, *RENDERING),
        cmd_workloads,
    )
    # fmt: on
    return [compare, bench, run, report, workloads]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pylibos",
        description="What it costs a library OS to create and wake threads over channels "
        "an untrusted host carries. The enclave boundary is modelled: host calls are "
        "counted, not taken.",
    )
    parser.add_argument("--version", action="version", version=f"pylibos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _commands():
        if command.func is None:
            sub.add_parser(command.name, help=command.summary, add_help=False)
            continue
        p = sub.add_parser(command.name, help=command.summary, description=command.description)
        add_options(p, command.options)
        p.set_defaults(func=command.func)
    return parser
