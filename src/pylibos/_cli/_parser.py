"""The parser of every subcommand but ``run`` (which has its own: ``_run.build_parser``)."""

from __future__ import annotations

import argparse

from .. import __version__
from ._bench import cmd_bench, cmd_compare
from ._options import (
    add_configs,
    add_ghz,
    add_json,
    add_measuring,
    add_ocall_cycles,
    add_rendering,
    integer,
    positive_float,
)
from ._report import cmd_report
from ._workloads import cmd_workloads


def build_parser() -> argparse.ArgumentParser:
    from ..bench import valid_names
    from ..workloads import DEFAULT_TIMEOUT_S

    parser = argparse.ArgumentParser(
        prog="pylibos",
        description="What it costs a library OS to create and wake threads over channels "
        "an untrusted host carries. The enclave boundary is modelled: host calls are "
        "counted, not taken.",
    )
    parser.add_argument("--version", action="version", version=f"pylibos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "compare",
        help="the main job: the seed's benchmark for several configurations side by side",
        description="Runs the seed's thread-creation micro-benchmark for several "
        "configurations, interleaved in rounds, and prints them side by side with ratios "
        "to sgx/pipe and to native, host calls per clone and a projected SGX cost.",
    )
    add_configs(p)
    add_measuring(p, duration=3.0, live=(1, 100, 1000), rounds=15)
    p.add_argument(
        "--until-stable", type=positive_float, metavar="W",
        help="after the planned rounds, keep adding interleaved rounds until every target's "
        "95%% interval spans at most W of its value (0.05: 5%%), or --budget ends; with no "
        "target among the configurations, every clone median's interval",
    )  # fmt: skip
    p.add_argument(
        "--budget", type=positive_float, default=60.0, metavar="S",
        help="with --until-stable: seconds of measuring per live count after which no "
        "further round starts (default 60)",
    )  # fmt: skip
    add_rendering(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "bench",
        help="the seed's benchmark for one configuration",
        description="Creates batches of threads through LibOS.clone for the duration and "
        "prints the seed's table: per-phase means, p1, p2, p3.",
    )
    p.add_argument(
        "--config", required=True, metavar="NAME",
        help=f"the configuration: {', '.join(valid_names())}",
    )  # fmt: skip
    add_measuring(p, duration=5.0, live=(0,))
    add_rendering(p)
    p.set_defaults(func=cmd_bench)

    sub.add_parser(
        "run",
        help="run an unmodified Python program under the LibOS (see pylibos run --help)",
        add_help=False,
    )

    p = sub.add_parser(
        "report",
        help="re-render a saved run (JSON) as tables, Markdown or a plot, or compare two",
        description="Reads the JSON a bench, compare or workloads run wrote and renders it "
        "again. With --vs, sets two bench or compare runs side by side: each phase median in A "
        "and in B, B ÷ A with its 95%% interval, and 'no significant change' where that "
        "interval holds 1.",
    )
    p.add_argument("results", metavar="A.json", help="a run's JSON")
    p.add_argument("--vs", metavar="B.json", help="a second run to compare with the first")
    add_rendering(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "workloads",
        help="real programs natively and under every configuration, each run its own process",
        description="Runs each workload (an ordinary Python program printing one result "
        "line) natively and under pylibos run for each configuration, interleaved round by "
        "round; checks every result line against native's; prints median wall time, ratios, "
        "threads created, host calls and the projected SGX time per workload and "
        "configuration.",
    )
    p.add_argument(
        "--only", metavar="NAMES",
        help="comma-separated workloads (default: every *.py in the workloads folder)",
    )  # fmt: skip
    add_configs(p, ", native among them")
    p.add_argument(
        "--repeat", type=integer, default=3, metavar="N",
        help="runs of each workload per configuration, one per round (default 3)",
    )  # fmt: skip
    p.add_argument(
        "--size", type=positive_float, metavar="S",
        help="passed to every workload as --size S: its work relative to the default "
        "(default: not passed, each workload's own default)",
    )  # fmt: skip
    p.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"seconds one run may take before it is killed and reported as failed "
        f"(default {DEFAULT_TIMEOUT_S:g})",
    )  # fmt: skip
    p.add_argument(
        "--dir", metavar="D",
        help="folder of workload programs (default: benchmarks/workloads of the source tree)",
    )  # fmt: skip
    add_ocall_cycles(p)
    add_ghz(p, "cycles-to-seconds in the projection")
    add_json(p)
    add_rendering(p)
    p.set_defaults(func=cmd_workloads)
    return parser
