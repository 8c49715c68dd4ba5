"""The ``pylibos`` command: one ``cmd_<name>`` function per subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__

# Each subcommand imports what it needs when it runs: `pylibos run` (every workload's
# process starts with it) then loads neither the benchmark, numpy, rich nor matplotlib.
if TYPE_CHECKING:
    from rich.console import Console

    from .bench import Settings
    from .bench._measure import More
    from .workloads import Settings as WorkloadSettings


class UsageError(Exception):
    """Bad input from the user: printed as ``ERROR: ...`` with exit code 1."""


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _live_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--live wants a count or a comma-separated list of counts, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("--live names no count")
    return values


def _common(p: argparse.ArgumentParser, duration: float, live: tuple[int, ...]) -> None:
    p.add_argument(
        "--duration", type=_positive_float, default=duration, metavar="S",
        help=f"seconds of measuring per configuration and live count (default {duration:g})",
    )  # fmt: skip
    p.add_argument(
        "--batch", type=_int, default=100, metavar="N",
        help="threads created per batch; each exits at once, the batch is joined (default 100)",
    )  # fmt: skip
    p.add_argument(
        "--rounds", type=_int, default=5, metavar="R",
        help="slices each configuration's duration is cut into, interleaved (default 5)",
    )  # fmt: skip
    p.add_argument(
        "--live", type=_live_list, default=live, metavar="N[,N...]",
        help="threads kept alive (asleep on their events) while measuring; a list sweeps "
        f"(default {','.join(map(str, live))})",
    )  # fmt: skip
    p.add_argument("--json", metavar="F", help="write the run's JSON to F")
    p.add_argument(
        "--ghz", type=_positive_float, metavar="G",
        help="clock for ns-to-cycles (default: the CPU's reported clock)",
    )  # fmt: skip
    p.add_argument(
        "--tls", metavar="LIB",
        help="TLS library of sgx pipes: mbedtls (Gramine's) or openssl (the standard "
        "library's ssl, Python 3.13+); default mbedtls where python-mbedtls is installed",
    )  # fmt: skip
    p.add_argument(
        "--ocall-cycles", type=_int, default=10_000, metavar="N",
        help="cycles one host call (OCALL round trip) costs in the SGX projection "
        "(default 10000; published measurements range 8000-17000)",
    )  # fmt: skip


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", metavar="F.png", help="write the phase plot to F.png")
    p.add_argument("--markdown", metavar="F.md", help="write the tables as Markdown to F.md")


def _settings(args: argparse.Namespace) -> Settings:
    from .bench import Settings, validate

    settings = Settings(
        duration=args.duration,
        batch=args.batch,
        rounds=args.rounds,
        live=args.live,
        ocall_cycles=args.ocall_cycles,
        ghz=args.ghz,
        tls=args.tls,
    )
    try:
        validate(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return settings


def _until_stable(width: float, budget: float, reached: dict[str, bool]) -> More:
    """Another round while some target of this live count (with no target among the
    configurations: some clone median) has an interval wider than ``width`` (relative to
    its value) and the budget is not spent."""

    from .bench._measure import Run
    from .bench._render import targets
    from .bench._stats import Figures

    def more(partial: Run, live: int, elapsed: float) -> bool:
        data = partial.as_json()
        # Fewer resamples than the final figures: this is asked after every round.
        figures = Figures(data, resamples=1000)
        values = [t.value for t in targets(data, figures) if live in t.lives]
        if not values:
            # No target among these configurations: their start medians, then.
            values = [
                figures.interval(e, "start.median") for e in data["configs"] if e["live"] == live
            ]
        wide = [v for v in values if v is not None and (v.width is None or v.width > width)]
        if not wide:
            reached[str(live)] = True
            return False
        if elapsed >= budget:
            reached[str(live)] = False
            return False
        return True

    return more


def _measure(
    configs: Sequence[Any],
    settings: Settings,
    console: Console,
    until: tuple[float, float] | None = None,
) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import RunError, analyse, run

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("setting up", total=None)

    def on_stage(live: int, total: int) -> None:
        progress.reset(task, total=total, description=f"measuring ({live} live)")

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
        console.print("[yellow]Interrupted: showing what was measured so far.[/yellow]")
    data = outcome.as_json()
    if until is not None:
        data["stability"]["until_stable"] = {
            "width": until[0],
            "budget_s": until[1],
            "reached": reached,
        }
    return analyse(data)


_PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any measuring, output paths that could not be written."""
    for option in ("json", "markdown", "plot"):
        path = getattr(args, option, None)
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"--{option} {path}: no such directory {folder}")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"--{option} {path}: directory {folder} is not writable")
    plot_path = getattr(args, "plot", None)
    if plot_path and not plot_path.lower().endswith(_PLOT_SUFFIXES):
        raise UsageError(f"--plot {plot_path}: the name must end in {', '.join(_PLOT_SUFFIXES)}")


def _outputs(data: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    try:
        _write_outputs(data, args, console)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None


def _write_outputs(data: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    from .bench import markdown, plot, save

    if getattr(args, "json", None):
        save(data, args.json)
        console.print(f"JSON written to {args.json}")
    if getattr(args, "markdown", None):
        with open(args.markdown, "w") as f:
            f.write(markdown(data))
        console.print(f"Markdown written to {args.markdown}")
    if getattr(args, "plot", None):
        plot(data, args.plot)
        console.print(f"plot written to {args.plot}")


def _print_warnings(notes: Sequence[str], console: Console) -> None:
    for note in notes:
        console.print(f"WARNING: {note}", style="yellow", markup=False, highlight=False)


def _print_compare(data: dict[str, Any], console: Console) -> None:
    from .bench._render import (
        COMPARE_LEGEND,
        compare_rows,
        describe,
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
    _print_warnings(warnings(data), console)


def _measure_checked(
    configs: Sequence[Any], args: argparse.Namespace, console: Console
) -> dict[str, Any]:
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
    _check_outputs(args)
    data = _measure(configs, settings, console, until)
    if not data["configs"]:
        raise UsageError("interrupted before a single batch was measured")
    return data


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from .bench import parse_config
    from .bench._render import describe, rich_table, seed_rows, warnings

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
    _print_warnings(warnings(data), console)
    _outputs(data, args, console)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from .bench import parse_config_list

    try:
        configs = parse_config_list(args.configs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = _measure_checked(configs, args, console)
    _print_compare(data, console)
    _outputs(data, args, console)
    return 0


def _load(path: str) -> dict[str, Any]:
    from .bench import ResultsError, analyse, load

    try:
        data = load(path)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    # Intervals and verdicts are drawn again from the samples (the same ones: the bootstrap
    # is seeded), never taken on trust from the file.
    return analyse(data, force=True)


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from .bench import ResultsError
    from .bench._render import describe, rich_table, vs_markdown, vs_rows
    from .bench._stats import differences
    from .workloads import load_if_workloads

    try:
        saved = load_if_workloads(args.results)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    if saved is not None:
        if args.vs is not None:
            raise UsageError("--vs compares micro-benchmark runs; this is a workloads run")
        _check_outputs(args)
        _print_workloads(saved, console)
        _write_workloads(saved, args, console)
        return 0
    data = _load(args.results)
    if args.vs is None:
        _check_outputs(args)
        _print_compare(data, console)
        _outputs(data, args, console)
        return 0
    if args.plot:
        raise UsageError("--plot draws one run; with --vs, use --markdown")
    other = _load(args.vs)
    _check_outputs(args)
    notes = differences(data, other)
    console.print(f"A: {args.results}: {describe(data)}")
    console.print(f"B: {args.vs}: {describe(other)}")
    header, rows, summary = vs_rows(data, other)
    console.print(rich_table("B ÷ A, per configuration and phase (medians)", header, rows))
    console.print(summary)
    _print_warnings(notes, console)
    if args.markdown:
        try:
            with open(args.markdown, "w") as f:
                f.write(vs_markdown(data, other, (args.results, args.vs), notes))
        except OSError as exc:
            raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None
        console.print(f"Markdown written to {args.markdown}")
    return 0


def _workload_settings(args: argparse.Namespace) -> WorkloadSettings:
    from .bench import parse_config_list
    from .workloads import Settings as WorkloadSettings
    from .workloads import default_dir as default_workloads_dir
    from .workloads import discover as discover_workloads
    from .workloads import validate as validate_workloads

    folder = Path(args.dir) if args.dir else default_workloads_dir()
    if not folder.is_dir():
        raise UsageError(
            f"no workloads folder {folder}"
            + ("" if args.dir else " (pylibos is not installed from its source tree: give --dir)")
        )
    if args.only is None:
        names = tuple(discover_workloads(folder))
    else:
        names = tuple(n for n in (p.strip() for p in args.only.split(",")) if n)
    try:
        configs = tuple(parse_config_list(args.configs))
        settings = WorkloadSettings(
            folder=folder,
            workloads=names,
            configs=configs,
            repeat=args.repeat,
            size=args.size,
            timeout_s=args.timeout,
            ocall_cycles=args.ocall_cycles,
            ghz=args.ghz,
        )
        validate_workloads(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return settings


def _print_workloads(data: dict[str, Any], console: Console) -> None:
    from .bench._render import rich_table
    from .workloads import describe as describe_workloads
    from .workloads import table_rows as workloads_rows
    from .workloads import target_rows as workloads_targets
    from .workloads._render import LEGEND as WORKLOADS_LEGEND

    console.print(describe_workloads(data))
    console.print(rich_table("Workloads (medians)", *workloads_rows(data)))
    console.print(WORKLOADS_LEGEND, style="dim")
    targets = workloads_targets(data)
    if targets[1]:
        console.print(rich_table("Targets", *targets))


def _write_workloads(data: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    from .bench import save
    from .workloads import markdown as workloads_markdown
    from .workloads import plot as workloads_plot

    try:
        if getattr(args, "json", None):
            save(data, args.json)
            console.print(f"JSON written to {args.json}")
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(workloads_markdown(data))
            console.print(f"Markdown written to {args.markdown}")
        if args.plot:
            workloads_plot(data, args.plot)
            console.print(f"plot written to {args.plot}")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None


def cmd_workloads(args: argparse.Namespace, console: Console) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .workloads import run as run_workloads

    settings = _workload_settings(args)
    _check_outputs(args)
    runs = settings.repeat * len(settings.workloads) * len(settings.configs)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("starting", total=runs)

    def on_start(round_no: int, workload: str, config: str) -> None:
        progress.update(
            task, description=f"round {round_no}/{settings.repeat}: {workload} under {config}"
        )

    def on_done() -> None:
        progress.advance(task)

    with progress:
        outcome = run_workloads(settings, on_start=on_start, on_done=on_done)
    if outcome.interrupted:
        console.print("[yellow]Interrupted: showing what was measured so far.[/yellow]")
    data = outcome.as_json()
    if not data["results"]:
        raise UsageError("interrupted before a single run was measured")
    _print_workloads(data, console)
    _write_workloads(data, args, console)
    for error in data["errors"]:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if data["errors"] else 0


def build_parser() -> argparse.ArgumentParser:
    from .bench import DEFAULT_COMPARE, valid_names
    from .workloads import DEFAULT_TIMEOUT_S

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
    p.add_argument(
        "--configs", default=",".join(DEFAULT_COMPARE), metavar="LIST",
        help=f"comma-separated configurations (default {','.join(DEFAULT_COMPARE)}); "
        f"valid: {', '.join(valid_names())}",
    )  # fmt: skip
    _common(p, duration=3.0, live=(1, 100, 1000))
    p.add_argument(
        "--until-stable", type=_positive_float, metavar="W",
        help="after the planned rounds, keep adding interleaved rounds until every target's "
        "95%% interval spans at most W of its value (0.05: 5%%), or --budget ends; with no "
        "target among the configurations, every clone median's interval",
    )  # fmt: skip
    p.add_argument(
        "--budget", type=_positive_float, default=60.0, metavar="S",
        help="with --until-stable: seconds of measuring per live count after which no "
        "further round starts (default 60)",
    )  # fmt: skip
    _render_args(p)
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
    _common(p, duration=5.0, live=(0,))
    _render_args(p)
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
    _render_args(p)
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
    p.add_argument(
        "--configs", default=",".join(DEFAULT_COMPARE), metavar="LIST",
        help=f"comma-separated configurations, native among them (default "
        f"{','.join(DEFAULT_COMPARE)}); valid: {', '.join(valid_names())}",
    )  # fmt: skip
    p.add_argument(
        "--repeat", type=_int, default=3, metavar="N",
        help="runs of each workload per configuration, one per round (default 3)",
    )  # fmt: skip
    p.add_argument(
        "--size", type=_positive_float, metavar="S",
        help="passed to every workload as --size S: its work relative to the default "
        "(default: not passed, each workload's own default)",
    )  # fmt: skip
    p.add_argument(
        "--timeout", type=_positive_float, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"seconds one run may take before it is killed and reported as failed "
        f"(default {DEFAULT_TIMEOUT_S:g})",
    )  # fmt: skip
    p.add_argument(
        "--dir", metavar="D",
        help="folder of workload programs (default: benchmarks/workloads of the source tree)",
    )  # fmt: skip
    p.add_argument(
        "--ocall-cycles", type=_int, default=10_000, metavar="N",
        help="cycles one host call (OCALL round trip) costs in the SGX projection "
        "(default 10000)",
    )  # fmt: skip
    p.add_argument(
        "--ghz", type=_positive_float, metavar="G",
        help="clock for cycles-to-seconds in the projection (default: the CPU's reported clock)",
    )  # fmt: skip
    p.add_argument("--json", metavar="F", help="write the run's JSON to F")
    _render_args(p)
    p.set_defaults(func=cmd_workloads)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["run"]:
        # Its own parser: everything after "--" (or the script) is the program's.
        from ._run import cmd_run

        return cmd_run(words[1:])
    parser = build_parser()
    args = parser.parse_args(words)
    from rich.console import Console

    # Piped output (a log, a file) gets room for the tables; a terminal keeps its width.
    console = Console(width=None if sys.stdout.isatty() else 160)
    func: Callable[[argparse.Namespace, Console], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 1
    try:
        return func(args, console)
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
