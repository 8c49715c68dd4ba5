"""``pylibos bench`` and ``pylibos compare``: the seed's micro-benchmark, measured with a
progress bar and printed as the seed's tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._options import UsageError, check_outputs
from ._output import print_interrupted, print_warnings, progress_bar, write_outputs

if TYPE_CHECKING:
    from rich.console import Console

    from ..bench import RunData, Settings
    from ..bench._measure import More


def _processes(args: argparse.Namespace) -> int:
    """``compare --processes``, or its default: ``DEFAULT_PROCESSES``, or ``--rounds`` if
    fewer (each process measures whole rounds).  ``bench``: one process."""
    from ..bench._measure import DEFAULT_PROCESSES

    if not hasattr(args, "processes"):
        return 1
    if args.processes is not None:
        return int(args.processes)
    return max(1, min(DEFAULT_PROCESSES, int(args.rounds)))


def _settings(args: argparse.Namespace) -> Settings:
    from ..bench import Settings, validate

    settings = Settings(
        duration=args.duration,
        batch=args.batch,
        rounds=args.rounds,
        live=args.live,
        ocall_cycles=args.ocall_cycles,
        ghz=args.ghz,
        tls=args.tls,
        pin=not args.all_cpus,
        reference=not getattr(args, "no_reference", False),
        profile_every=args.profile_every,
        processes=_processes(args),
    )
    try:
        validate(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return settings


def _until_stable(width: float, budget: float, reached: dict[str, bool]) -> More:
    """Another round while some target (with no target among the configurations: some
    start median) has an interval wider than ``width`` (relative to its value) and the
    budget is not spent: ``budget`` seconds of measuring per live count, as every live
    count is measured in each round."""

    from ..bench._measure import Run
    from ..bench._render import targets
    from ..bench._stats import Figures, Interval

    def more(partial: Run, elapsed: float) -> bool:
        data = partial.as_json()
        # Fewer resamples than the final figures: this is asked after every round.
        figures = Figures(data, resamples=1000)
        found = targets(data, figures)
        narrow: dict[int, bool] = {}
        for live in partial.settings.live:
            values: list[Interval | None] = [t.value for t in found if live in t.lives]
            if not values:
                # No target at this live count: its start medians, then.
                values = [
                    figures.interval(e, "start.median")
                    for e in data["configs"]
                    if e["live"] == live
                ]
            narrow[live] = all(
                v is None or (v.width is not None and v.width <= width) for v in values
            )
        done = all(narrow.values()) or elapsed >= budget * len(partial.settings.live)
        if done:
            reached.update({str(live): ok for live, ok in narrow.items()})
        return not done

    return more


def _measure(
    configs: Sequence[Any],
    settings: Settings,
    console: Console,
    until: tuple[float, float] | None = None,
) -> RunData:
    from ..bench import RunError, analyse, run

    progress = progress_bar()
    task = progress.add_task("setting up", total=None)

    def on_stage(total: int) -> None:
        progress.reset(task, total=total, description="measuring")

    def on_slice(name: str) -> None:
        progress.update(task, advance=1, description=f"measuring {name}")

    reached: dict[str, bool] = {}
    more = None if until is None else _until_stable(until[0], until[1], reached)
    try:
        with progress:
            outcome = run(configs, settings, on_slice=on_slice, on_stage=on_stage, more=more)
    except (RunError, OSError, RuntimeError) as exc:
        # The machine ran out of something (descriptors, threads, memory) or a thread
        # never ended: say which, not where in the code.
        raise UsageError(f"the run failed: {exc}") from None
    if outcome.interrupted:
        print_interrupted(console)
    data = outcome.as_json()
    if until is not None:
        data["stability"]["until_stable"] = {
            "width": until[0],
            "budget_s": until[1],
            "reached": reached,
        }
    return analyse(data)


def _measure_checked(configs: Sequence[Any], args: argparse.Namespace, console: Console) -> RunData:
    """Settings and output paths checked first, then the run; an empty run is an error."""
    settings = _settings(args)
    until = None
    if getattr(args, "until_stable", None) is not None:
        width, budget = args.until_stable, args.budget
        if not (0 < width < 10):
            raise UsageError(f"--until-stable must be a width in (0, 10), got {width:g}")
        if not (0 < budget <= 86_400):
            raise UsageError(f"--budget must be in (0, 86400] seconds, got {budget:g}")
        until = (width, budget)
    check_outputs(args)
    data = _measure(configs, settings, console, until)
    if not data["configs"]:
        raise UsageError("interrupted before a single batch was measured")
    return data


def write_run(data: RunData, args: argparse.Namespace, console: Console) -> None:
    """A micro-benchmark run's JSON, Markdown and plot, where the options ask for them."""
    from ..bench import markdown, plot

    write_outputs(data, args, console, markdown, plot)


def print_compare(data: RunData, console: Console) -> None:
    from ..bench._render import (
        COMPARE_LEGEND,
        compare_rows,
        describe,
        method_note,
        processes_note,
        rich_table,
        seed_rows,
        target_rows,
        warnings,
    )

    console.print(describe(data))
    console.print(rich_table("Side by side (medians, 95% intervals)", *compare_rows(data)))
    console.print(COMPARE_LEGEND, style="dim")
    console.print(
        rich_table(
            "The seed's table (means per call, 95% intervals)", *seed_rows(data, cycles=False)
        )
    )
    console.print(rich_table("Targets", *target_rows(data)))
    console.print(
        "met / missed: the whole 95% interval is on one side of the limit; otherwise inconclusive.",
        style="dim",
    )
    for note in (method_note(data), processes_note(data)):
        if note:
            console.print(note, style="dim")
    print_warnings(warnings(data), console)


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from ..bench import parse_config
    from ..bench._render import describe, rich_table, seed_rows, warnings

    try:
        config = parse_config(args.config)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = _measure_checked([config], args, console)
    cycles = args.ghz is not None
    console.print(describe(data))
    console.print(
        rich_table(
            "The seed's table (means per call, 95% intervals)", *seed_rows(data, cycles=cycles)
        )
    )
    print_warnings(warnings(data), console)
    write_run(data, args, console)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from ..bench import parse_config_list

    try:
        configs = parse_config_list(args.configs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = _measure_checked(configs, args, console)
    print_compare(data, console)
    write_run(data, args, console)
    return 0
