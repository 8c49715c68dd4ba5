"""Rendering a benchmark run: terminal tables, Markdown and a plot, all from its JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

Data = dict[str, Any]
Entry = dict[str, Any]

# The seed's figures (cycles, means per call), for the docs to set beside ours.
SEED_TABLES = {
    "Gramine-SGX, ede508c (40 batches)": {
        "handshake": 2052777, "create_pollable_event": 2262290, "get_new_thread": 2279296,
        "clone": 2871136, "p1": 0.9925, "p2": 0.7879, "p3": 0.7150,
    },
    "Gramine-direct, ede508c (156 batches)": {
        "handshake": None, "create_pollable_event": 120799, "get_new_thread": 265390,
        "clone": 753470, "p1": 0.4552, "p2": 0.1603, "p3": None,
    },
    "Gramine-SGX with raw pipes, PR 1371 (291 batches)": {
        "handshake": None, "create_pollable_event": 121254, "get_new_thread": 132965,
        "clone": 394642, "p1": 0.9119, "p2": 0.3073, "p3": None,
    },
    "Gramine-SGX without the fix, ad39399 (63 batches)": {
        "handshake": None, "create_pollable_event": 1590937, "get_new_thread": 1601655,
        "clone": 1851699, "p1": 0.9933, "p2": 0.8592, "p3": None,
    },
    "Gramine-direct, ad39399 (506 batches)": {
        "handshake": None, "create_pollable_event": 42446, "get_new_thread": 96964,
        "clone": 230311, "p1": 0.4378, "p2": 0.1843, "p3": None,
    },
}  # fmt: skip


def _phase(entry: Entry, phase: str, stat: str) -> float | None:
    value = entry["phases_ns"].get(phase)
    return None if value is None else float(value[stat])


def find(data: Data, name: str, live: int) -> Entry | None:
    for entry in data["configs"]:
        if entry["name"] == name and entry["live"] == live:
            found: Entry = entry
            return found
    return None


def ratio(data: Data, entry: Entry, base: str, phase: str = "clone") -> float | None:
    other = find(data, base, entry["live"])
    if other is None:
        return None
    mine, theirs = _phase(entry, phase, "median"), _phase(other, phase, "median")
    if mine is None or not theirs:
        return None
    return mine / theirs


def _us(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1000:,.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _lives(data: Data) -> list[int]:
    return sorted({e["live"] for e in data["configs"]})


def seed_rows(data: Data, *, cycles: bool) -> tuple[list[str], list[list[str]]]:
    """The seed's table: means per call (ns, or cycles at the run's GHz)."""
    ghz = float(data["settings"]["ghz"])
    unit = "cycles" if cycles else "µs"

    def cell(entry: Entry, phase: str) -> str:
        v = _phase(entry, phase, "mean")
        if v is None:
            return "-"
        return f"{v * ghz:,.0f}" if cycles else _us(v)

    header = [
        "config", "live", f"handshake ops ({unit})", f"create_pollable_event ({unit})",
        f"get_new_thread ({unit})", f"clone ({unit})", "p1", "p2", "p3", "batches",
    ]  # fmt: skip
    rows = []
    for e in data["configs"]:
        p = e["proportions"]
        rows.append([
            e["name"], str(e["live"]), cell(e, "handshake"), cell(e, "create_pollable_event"),
            cell(e, "get_new_thread"), cell(e, "clone"), _pct(p["p1"]), _pct(p["p2"]),
            _pct(p["p3"]), str(e["batches"]),
        ])  # fmt: skip
    return header, rows


COMPARE_LEGEND = (
    "Medians per clone.  host calls: per thread, its whole life (creation, handshake "
    "traffic, exit).  projected: measured cycles + host calls × the per-call cost.  "
    "RSS / live: resident memory per thread kept alive, asleep on its event."
)


def compare_rows(data: Data) -> tuple[list[str], list[list[str]]]:
    """Medians side by side, with ratios and the projected SGX cost."""
    ghz = float(data["settings"]["ghz"])
    header = [
        "config", "live", "clone µs", "÷ sgx/pipe", "÷ native", "create_pollable_event µs",
        "host calls", "projected kcycles", "projected µs", "RSS / live",
    ]  # fmt: skip
    rows = []
    for e in data["configs"]:
        proj = e["projected_cycles_per_clone"]
        rss = e.get("rss_per_live_thread_kib")
        rows.append([
            e["name"], str(e["live"]), _us(_phase(e, "clone", "median")),
            _x(ratio(data, e, "sgx/pipe")), _x(ratio(data, e, "native")),
            _us(_phase(e, "create_pollable_event", "median")),
            f"{e['host_calls_per_clone']:.2f}",
            "-" if proj is None else f"{proj / 1000:,.1f}",
            "-" if proj is None else f"{proj / ghz / 1000:,.1f}",
            "-" if rss is None else f"{rss:,.1f} KiB",
        ])  # fmt: skip
    return header, rows


@dataclass(frozen=True)
class Target:
    what: str
    value: float | None
    limit: float
    at_most: bool

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit


def targets(data: Data) -> list[Target]:
    """The project's targets, checked against this run (those its configurations allow)."""
    out: list[Target] = []
    lives = _lives(data)

    def entry(name: str) -> Entry | None:
        return find(data, name, lives[0])

    raw, pipe, native = entry("sgx/raw"), entry("sgx/pipe"), entry("native")
    if raw and pipe:
        out.append(Target("clone: sgx/raw ÷ sgx/pipe", ratio(data, raw, "sgx/pipe"), 0.25, True))
        out.append(
            Target(
                "create_pollable_event: sgx/raw ÷ sgx/pipe",
                ratio(data, raw, "sgx/pipe", "create_pollable_event"),
                0.10,
                True,
            )
        )
    for name, limit in (("sgx/eventfd", 1.15), ("sgx/raw+pool", 1.10)):
        e = entry(name)
        if e and native:
            out.append(Target(f"clone: {name} ÷ native", ratio(data, e, "native"), limit, True))
    for name, limit in (("sgx/eventfd", 3.0), ("sgx/raw+pool", 1.1)):
        e = entry(name)
        if e:
            calls = float(e["host_calls_per_clone"])
            out.append(Target(f"host calls per clone: {name}", calls, limit, True))
    if pipe:
        p = pipe["proportions"]
        out.append(Target("sgx/pipe p2", p["p2"], 0.6, False))
        out.append(Target("sgx/pipe p3", p["p3"], 0.5, False))
    if len(lives) > 1:
        lo, hi = lives[0], lives[-1]
        for name in dict.fromkeys(e["name"] for e in data["configs"]):
            a, b = find(data, name, lo), find(data, name, hi)
            if a and b:
                ca, cb = _phase(a, "clone", "median"), _phase(b, "clone", "median")
                value = None if not ca or cb is None else cb / ca
                out.append(Target(f"clone at {hi} live ÷ at {lo} live: {name}", value, 1.2, True))
    return out


def target_rows(data: Data) -> tuple[list[str], list[list[str]]]:
    rows = []
    for t in targets(data):
        verdict = {True: "met", False: "MISSED", None: "-"}[t.met]
        rows.append([t.what, _x(t.value), f"{'≤' if t.at_most else '≥'} {t.limit:g}", verdict])
    return ["target", "value", "limit", "verdict"], rows


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def describe(data: Data) -> str:
    m, s = data["machine"], data["settings"]
    return (
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, pylibos {m['pylibos']}; "
        f"duration {s['duration_s']:g} s per configuration in {s['rounds']} rounds, "
        f"batch {s['batch']}, {s['ghz']:g} GHz for cycles, {s['ocall_cycles']:,} cycles per "
        "host call in the projection"
        + ("; INTERRUPTED, partial" if data.get("interrupted") else "")
    )


def markdown(data: Data) -> str:
    parts = [
        "# pylibos benchmark run",
        "",
        describe(data),
        "",
        "## Side by side (medians)",
        "",
        COMPARE_LEGEND,
        "",
        _md(*compare_rows(data)),
        "",
        "## The seed's table (means per call, cycles at the run's GHz)",
        "",
        _md(*seed_rows(data, cycles=True)),
        "",
        "## Targets",
        "",
        _md(*target_rows(data)),
        "",
    ]
    return "\n".join(parts)


_SEGMENTS = (
    ("handshake ops", "handshake", None),
    ("rest of create_pollable_event", "create_pollable_event", "handshake"),
    ("rest of get_new_thread", "get_new_thread", "create_pollable_event"),
    ("rest of clone (PAL thread create)", "clone", "get_new_thread"),
)


def plot(data: Data, path: str) -> None:
    """Each configuration's clone cost broken into its phases (means, so parts add up),
    and beside it the projected SGX cost with host calls priced in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = data["configs"]
    labels = [
        e["name"] + (f" ({e['live']} live)" if len(_lives(data)) > 1 else "") for e in entries
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.55 * len(entries) + 2.2), sharey=True)
    ys = list(range(len(entries)))
    left = [0.0] * len(entries)
    colors = ("#c0392b", "#e67e22", "#2980b9", "#7f8c8d")
    for (label, phase, minus), color in zip(_SEGMENTS, colors, strict=True):
        widths = []
        for e in entries:
            total = _phase(e, phase, "mean")
            sub = _phase(e, minus, "mean") if minus else 0.0
            widths.append(max(0.0, ((total or 0.0) - (sub or 0.0)) / 1000))
        ax1.barh(ys, widths, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax1.set_yticks(ys, labels)
    ax1.invert_yaxis()
    ax1.set_xlabel("µs per clone (mean), measured")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_title("Thread creation, by phase")
    ghz = float(data["settings"]["ghz"])
    proj = [(e["projected_cycles_per_clone"] or 0.0) / 1e3 for e in entries]
    measured = [(_phase(e, "clone", "median") or 0.0) * ghz / 1e3 for e in entries]
    ax2.barh(ys, measured, color="#34495e", label="measured (median)")
    ax2.barh(
        ys,
        [p - m for p, m in zip(proj, measured, strict=True)],
        left=measured,
        color="#95a5a6",
        label=f"host calls × {data['settings']['ocall_cycles']:,} cycles",
    )
    ax2.set_xlabel("thousand cycles per clone, projected for SGX")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_title("Projected SGX cost")
    fig.suptitle(describe(data), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
