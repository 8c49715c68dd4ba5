"""What the measuring commands show while they run and write when they end: the
progress bar on stderr, warnings, and the files ``--json``, ``--markdown``, ``--plot``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ._options import UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def progress_bar() -> Progress:
    """A bar on stderr (stdout keeps the tables), gone when the run ends."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def print_interrupted(console: Console) -> None:
    console.print("[yellow]Interrupted: showing what was measured so far.[/yellow]")


def print_warnings(notes: Sequence[str], console: Console) -> None:
    for note in notes:
        console.print(f"WARNING: {note}", style="yellow", markup=False, highlight=False)


D = TypeVar("D", bound=Mapping[str, Any])
"""A saved run: the benchmark's (``RunData``) or the workloads'."""


@contextmanager
def writing() -> Iterator[None]:
    """An output file that cannot be written is the user's error, named by its path."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None


def write_text(path: str, text: str, console: Console) -> None:
    with writing(), open(path, "w") as f:
        f.write(text)
    console.print(f"Markdown written to {path}")


def write_outputs(
    data: D,
    args: argparse.Namespace,
    console: Console,
    markdown: Callable[[D], str],
    plot: Callable[[D, str], None],
) -> None:
    """The run's JSON, Markdown (``markdown(data)``) and plot (``plot(data, path)``),
    each where its option names a path."""
    from ..bench import save

    with writing():
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
