"""``pylibos workloads``: real programs natively and under every configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._options import UsageError, check_outputs
from ._output import print_interrupted, progress_bar, write_outputs

if TYPE_CHECKING:
    from rich.console import Console

    from .._schema import WorkloadsRun
    from ..workloads import Settings


def _settings(args: argparse.Namespace) -> Settings:
    from ..bench import parse_config_list
    from ..workloads import Settings, default_dir, discover, validate

    folder = Path(args.dir) if args.dir else default_dir()
    if not folder.is_dir():
        raise UsageError(
            f"no workloads folder {folder}"
            + ("" if args.dir else " (pylibos is not installed from its source tree: give --dir)")
        )
    if args.only is None:
        names = tuple(discover(folder))
    else:
        names = tuple(n for n in (p.strip() for p in args.only.split(",")) if n)
    try:
        configs = tuple(parse_config_list(args.configs))
        settings = Settings(
            folder=folder,
            workloads=names,
            configs=configs,
            repeat=args.repeat,
            size=args.size,
            timeout_s=args.timeout,
            ocall_cycles=args.ocall_cycles,
            ghz=args.ghz,
        )
        validate(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return settings


def print_workloads(data: WorkloadsRun, console: Console) -> None:
    from ..bench._render import rich_table
    from ..workloads import LEGEND, describe, table_rows, target_rows

    console.print(describe(data))
    console.print(rich_table("Workloads (medians)", *table_rows(data)))
    console.print(LEGEND, style="dim")
    targets = target_rows(data)
    if targets[1]:
        console.print(rich_table("Targets", *targets))


def write_workloads(data: WorkloadsRun, args: argparse.Namespace, console: Console) -> None:
    """A workloads run's JSON, Markdown and plot, where the options ask for them."""
    from ..workloads import markdown, plot

    write_outputs(data, args, console, markdown, plot)


def cmd_workloads(args: argparse.Namespace, console: Console) -> int:
    from ..workloads import run

    settings = _settings(args)
    check_outputs(args)
    runs = settings.repeat * len(settings.workloads) * len(settings.configs)
    progress = progress_bar()
    task = progress.add_task("starting", total=runs)

    def on_start(round_no: int, workload: str, config: str) -> None:
        progress.update(
            task, description=f"round {round_no}/{settings.repeat}: {workload} under {config}"
        )

    def on_done() -> None:
        progress.advance(task)

    with progress:
        outcome = run(settings, on_start=on_start, on_done=on_done)
    if outcome.interrupted:
        print_interrupted(console)
    data = outcome.as_json()
    if not data["results"]:
        raise UsageError("interrupted before a single run was measured")
    print_workloads(data, console)
    write_workloads(data, args, console)
    for error in data["errors"]:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if data["errors"] else 0
