"""Dispatch: ``pylibos run`` to its own parser, everything else through ``build_parser``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._options import UsageError

if TYPE_CHECKING:
    from rich.console import Console


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["run"]:
        # Its own parser: everything after "--" (or the script) is the program's.
        from ._run import cmd_run

        return cmd_run(words[1:])
    from ._parser import build_parser

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
