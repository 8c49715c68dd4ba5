"""``pylibos report``: a saved run rendered again, or two micro-benchmark runs side by side."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._bench import print_compare, write_run
from ._options import UsageError, check_outputs
from ._output import print_warnings, write_text
from ._workloads import print_workloads, write_workloads

if TYPE_CHECKING:
    from rich.console import Console

    from ..bench import RunData


def _load(path: str, *, no_reference: bool = False) -> RunData:
    from ..bench import ResultsError, analyse, load

    try:
        data = load(path)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    if no_reference:
        data["settings"]["reference_normalised"] = False
    # Intervals and verdicts are drawn again from the samples (the same ones: the bootstrap
    # is seeded), never taken on trust from the file.
    return analyse(data, force=True)


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from ..bench import ResultsError
    from ..bench._render import describe, rich_table, vs_markdown, vs_rows
    from ..bench._vs import differences, vs_target_rows
    from ..workloads import load_if_workloads

    try:
        saved = load_if_workloads(args.results)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    if saved is not None:
        if args.vs is not None:
            raise UsageError("--vs compares micro-benchmark runs; this is a workloads run")
        check_outputs(args)
        print_workloads(saved, console)
        write_workloads(saved, args, console)
        return 0
    data = _load(args.results, no_reference=args.no_reference)
    if args.raw and args.vs is None:
        raise UsageError("--raw judges a comparison: give the second run with --vs B.json")
    if args.vs is None:
        check_outputs(args)
        print_compare(data, console)
        write_run(data, args, console)
        return 0
    if args.plot:
        raise UsageError("--plot draws one run; with --vs, use --markdown")
    try:
        other_workloads = load_if_workloads(args.vs)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    if other_workloads is not None:
        raise UsageError(
            f"--vs compares micro-benchmark runs; {args.vs} is a workloads run "
            "(`pylibos report` renders it alone)"
        )
    other = _load(args.vs, no_reference=args.no_reference)
    check_outputs(args)
    notes = differences(data, other)
    console.print(f"A: {args.results}: {describe(data)}")
    console.print(f"B: {args.vs}: {describe(other)}")
    header, rows, summary = vs_rows(data, other, raw=args.raw)
    title = "B ÷ A, per configuration and phase (medians), and with native's B ÷ A removed"
    console.print(rich_table(title, header, rows))
    console.print(summary)
    t_header, t_rows, t_summary = vs_target_rows(data, other)
    console.print(rich_table("Targets in A and B", t_header, t_rows))
    console.print(t_summary)
    print_warnings(notes, console)
    if args.markdown:
        text = vs_markdown(data, other, (args.results, args.vs), notes, raw=args.raw)
        write_text(args.markdown, text, console)
    return 0
