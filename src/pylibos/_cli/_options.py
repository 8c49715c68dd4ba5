"""What every subcommand parses the same way: numbers, output paths, the options the
benchmark commands share; and ``UsageError``, bad input from the user."""

from __future__ import annotations

import argparse
import os

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


def add_measuring(
    p: argparse.ArgumentParser, duration: float, live: tuple[int, ...], rounds: int = 5
) -> None:
    """The options of the micro-benchmark commands (``bench``, ``compare``)."""
    p.add_argument(
        "--duration", type=positive_float, default=duration, metavar="S",
        help=f"seconds of measuring per configuration and live count (default {duration:g})",
    )  # fmt: skip
    p.add_argument(
        "--batch", type=integer, default=100, metavar="N",
        help="threads created per batch; each exits at once, the batch is joined (default 100)",
    )  # fmt: skip
    p.add_argument(
        "--rounds", type=integer, default=rounds, metavar="R",
        help=f"slices each configuration's duration is cut into, interleaved (default {rounds})",
    )  # fmt: skip
    p.add_argument(
        "--live", type=live_list, default=live, metavar="N[,N...]",
        help="threads kept alive (asleep on their events) while measuring; a list sweeps "
        f"(default {','.join(map(str, live))})",
    )  # fmt: skip
    add_json(p)
    add_ghz(p, "ns-to-cycles")
    p.add_argument(
        "--tls", metavar="LIB",
        help="TLS library of sgx pipes: mbedtls (Gramine's) or openssl (the standard "
        "library's ssl, Python 3.13+); default mbedtls where python-mbedtls is installed",
    )  # fmt: skip
    p.add_argument(
        "--all-cpus", action="store_true",
        help="let the kernel place the measuring threads on any CPU (default: one CPU, so "
        "a thread start never waits for another CPU to wake; see docs/benchmark.md)",
    )  # fmt: skip
    add_ocall_cycles(p, "; published measurements range 8000-17000")


def add_rendering(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", metavar="F.png", help="write the phase plot to F.png")
    p.add_argument("--markdown", metavar="F.md", help="write the tables as Markdown to F.md")


def add_configs(p: argparse.ArgumentParser, note: str = "") -> None:
    from ..bench import DEFAULT_COMPARE, valid_names

    default = ",".join(DEFAULT_COMPARE)
    p.add_argument(
        "--configs", default=default, metavar="LIST",
        help=f"comma-separated configurations{note} (default {default}); "
        f"valid: {', '.join(valid_names())}",
    )  # fmt: skip


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="F", help="write the run's JSON to F")


def add_ghz(p: argparse.ArgumentParser, use: str) -> None:
    p.add_argument(
        "--ghz", type=positive_float, metavar="G",
        help=f"clock for {use} (default: the CPU's reported clock)",
    )  # fmt: skip


def add_ocall_cycles(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument(
        "--ocall-cycles", type=integer, default=10_000, metavar="N",
        help=f"cycles one host call (OCALL round trip) costs in the SGX projection "
        f"(default 10000{note})",
    )  # fmt: skip
