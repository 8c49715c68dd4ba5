"""What every subcommand parses the same way: numbers, output paths, the options the
benchmark commands share; and ``UsageError``, bad input from the user."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


class UsageError(Exception):
    """Bad input from the user: printed as ``ERROR: ...`` with exit code 1."""


def positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def integer(text: str) -> int:
    """An integer, digits grouped by ``_`` if the user likes (``10_000``)."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def nonnegative_integer(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_integer(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def live_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--live wants a count or a comma-separated list of counts, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("--live names no count")
    return values


def check_writable(option: str, path: str | None) -> None:
    """Refuse, before any work, an output path whose directory is missing or read-only."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--{option} {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--{option} {path}: directory {folder} is not writable")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any measuring, output paths that could not be written."""
    for option in ("json", "markdown", "plot"):
        check_writable(option, getattr(args, option, None))
    plot_path = getattr(args, "plot", None)
    if plot_path and not plot_path.lower().endswith(PLOT_SUFFIXES):
        raise UsageError(f"--plot {plot_path}: the name must end in {', '.join(PLOT_SUFFIXES)}")


@dataclass(frozen=True)
class Option:
    """One option as ``ArgumentParser.add_argument`` takes it; a field left at None is
    not passed (argparse's own default)."""

    flag: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None
    action: str | None = None
    required: bool | None = None

    def add_to(self, p: argparse.ArgumentParser) -> None:
        given = {
            "metavar": self.metavar, "type": self.type, "default": self.default,
            "action": self.action, "required": self.required,
        }  # fmt: skip
        passed = {name: value for name, value in given.items() if value is not None}
        p.add_argument(self.flag, help=self.help, **passed)


def add_options(p: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    for option in options:
        option.add_to(p)


def measuring(duration: float, live: tuple[int, ...], rounds: int = 5) -> list[Option]:
    """The options of the micro-benchmark commands (``bench``, ``compare``)."""
    # fmt: off
    return [
        Option("--duration", metavar="S", type=positive_float, default=duration,
               help=f"seconds of measuring per configuration and live count (default "
               f"{duration:g})"),
        Option("--batch", metavar="N", type=integer, default=100,
               help="threads created per batch; each exits at once, the batch is joined "
               "(default 100)"),
        Option("--rounds", metavar="R", type=integer, default=rounds,
               help=f"slices each configuration's duration is cut into, interleaved "
               f"(default {rounds})"),
        Option("--live", metavar="N[,N...]", type=live_list, default=live,
               help="threads kept alive (asleep on their events) while measuring; a list "
               f"sweeps (default {','.join(map(str, live))})"),
        JSON,
        ghz("ns-to-cycles"),
        Option("--tls", metavar="LIB",
               help="TLS library of sgx pipes: mbedtls (Gramine's) or openssl (the standard "
               "library's ssl, Python 3.13+); default mbedtls where python-mbedtls is "
               "installed"),
        Option("--all-cpus", action="store_true",
               help="let the kernel place the measuring threads on any CPU (default: one "
               "CPU, so a thread start never waits for another CPU to wake; see "
               "docs/benchmark.md)"),
        ocall_cycles("; published measurements range 8000-17000"),
    ]
    # fmt: on


RENDERING = (
    Option("--plot", metavar="F.png", help="write the phase plot to F.png"),
    Option("--markdown", metavar="F.md", help="write the tables as Markdown to F.md"),
)
"""Where a command's tables and plot go, besides the terminal."""

JSON = Option("--json", metavar="F", help="write the run's JSON to F")


def configs(note: str = "") -> Option:
    from ..bench import DEFAULT_COMPARE, valid_names

    default = ",".join(DEFAULT_COMPARE)
    return Option(
        "--configs", metavar="LIST", default=default,
        help=f"comma-separated configurations{note} (default {default}); "
        f"valid: {', '.join(valid_names())}",
    )  # fmt: skip


def ghz(use: str) -> Option:
    return Option(
        "--ghz", metavar="G", type=positive_float,
        help=f"clock for {use} (default: the CPU's reported clock)",
    )  # fmt: skip


def ocall_cycles(note: str = "") -> Option:
    return Option(
        "--ocall-cycles", metavar="N", type=integer, default=10_000,
        help=f"cycles one host call (OCALL round trip) costs in the SGX projection "
        f"(default 10000{note})",
    )  # fmt: skip
