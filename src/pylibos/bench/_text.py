"""Text pieces every rendering of a run shares: number formats, tables, the run's header."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from rich.table import Table

from .._schema import Entry, IntervalJSON, RunData
from ._stats import Interval

E = TypeVar("E", bound=Mapping[str, Any])


def first(entries: Iterable[E], **match: object) -> E | None:
    """The first entry whose keys hold every value in ``match``, or None."""
    for entry in entries:
        if all(entry[k] == v for k, v in match.items()):
            return entry
    return None


def us(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1000:,.1f}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def x3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def with_interval(iv: Interval | None, fmt: Callable[[float], str]) -> str:
    """A figure with its 95% interval: ``130.6 (128.1–133.0)``."""
    if iv is None:
        return "-"
    text: str = fmt(iv.value)
    if iv.low is not None and iv.high is not None and iv.low != iv.high:
        text += f" ({fmt(iv.low)}–{fmt(iv.high)})"
    return text


def _interval(d: IntervalJSON | None) -> Interval | None:
    return None if d is None else Interval.from_json(d)


def stored(entry: Entry, key: str) -> Interval | None:
    """A figure's interval as the analysis stored it (``intervals``)."""
    return _interval(entry.get("intervals", {}).get(key))


def stored_ratio(entry: Entry, key: str) -> Interval | None:
    """A ratio's interval as the analysis stored it (``ratios``)."""
    return _interval(entry.get("ratios", {}).get(key))


def lives(data: RunData) -> list[int]:
    return sorted({e["live"] for e in data["configs"]})


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def md(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


_TLS_NAMES = {"mbedtls": "mbed TLS", "openssl": "OpenSSL"}


def describe(data: RunData) -> str:
    """One line: the machine, the settings, the load and how the run was measured."""
    m, s = data["machine"], data["settings"]
    stab = data["stability"]
    before, after = stab.get("load_before"), stab.get("load_after")
    load = ""
    if before and after:
        load = f"; load average {before[0]:.2f} before, {after[0]:.2f} after"
    steal = stab.get("steal")
    if steal is not None:
        load += f", {steal:.0%} of CPU time stolen by the hypervisor"
    dropped = sum(e.get("slices_dropped", 0) for e in data["configs"])
    if dropped:
        load += f"; {dropped} slices dropped and measured again (another process on the CPU)"
    governor = f", governor {stab['governor']}" if stab.get("governor") else ""
    cpu, tls = s.get("cpu"), s.get("tls")
    where = "" if data["version"] < 4 else "; every CPU" if cpu is None else f"; on CPU {cpu}"
    k = s.get("processes")
    if k is not None:
        where += (
            f"; {k} measuring processes per configuration and live count, taking turns "
            "round by round"
            if k > 1
            else "; one measuring process per configuration and live count"
        )
    return (
        f"{m['cpu']}, {m['cores']} cores{governor}, Python {m['python']}, pylibos "
        f"{m['pylibos']}; "
        + (f"TLS by {_TLS_NAMES.get(tls, tls)}; " if tls else "")
        + f"duration {s['duration_s']:g} s per configuration in {s['rounds']} "
        f"rounds, batch {s['batch']}, {s['ghz']:g} GHz for cycles, {s['ocall_cycles']:,} "
        "cycles per host call in the projection"
        + where
        + load
        + ("; INTERRUPTED, partial" if data.get("interrupted") else "")
    )
