"""Rendering a benchmark run: terminal tables, Markdown and a plot, all from its JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from ..libos import PROPORTIONS
from ._stats import (
    TIMED,
    Figures,
    Interval,
    changes,
    exact,
    projection,
    quotient,
    stability_warnings,
)

Data = dict[str, Any]
Entry = dict[str, Any]


def _phase(entry: Entry, phase: str, stat: str) -> float | None:
    value = entry["phases_ns"].get(phase)
    return None if value is None else float(value[stat])


def find(data: Data, name: str, live: int) -> Entry | None:
    for entry in data["configs"]:
        if entry["name"] == name and entry["live"] == live:
            found: Entry = entry
            return found
    return None


def ratio(
    data: Data, entry: Entry, base: str, phase: str = "clone", figures: Figures | None = None
) -> Interval | None:
    """``entry``'s median of ``phase`` over ``base``'s at the same live count."""
    other = find(data, base, entry["live"])
    if other is None:
        return None
    f = figures or Figures(data)
    key = f"{phase}.median"
    return quotient([(f, entry, key)], [(f, other, key)])


def _us(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1000:,.1f}"


def _fmt(iv: Interval | None, fmt: Callable[[float], str]) -> str:
    """A figure with its 95% interval: ``130.6 (128.1–133.0)``."""
    if iv is None:
        return "-"
    text: str = fmt(iv.value)
    if iv.low is not None and iv.high is not None and iv.low != iv.high:
        text += f" ({fmt(iv.low)}–{fmt(iv.high)})"
    return text


def _iv(entry: Entry, key: str) -> Interval | None:
    d = (entry.get("intervals") or {}).get(key)
    return None if d is None else Interval.from_json(d)


def _ratio_iv(entry: Entry, key: str) -> Interval | None:
    d = (entry.get("ratios") or {}).get(key)
    return None if d is None else Interval.from_json(d)


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

    analyse(data)

    def cell(entry: Entry, phase: str) -> str:
        iv = _iv(entry, f"{phase}.mean")
        if cycles:
            return _fmt(iv, lambda v: f"{v * ghz:,.0f}")
        return _fmt(iv, _us)

    def prop(entry: Entry, name: str) -> str:
        return _fmt(_iv(entry, name), _pct)

    header = [
        "config", "live", f"handshake ops ({unit})", f"create_pollable_event ({unit})",
        f"get_new_thread ({unit})", f"clone ({unit})", "p1", "p2", "p3", "batches",
    ]  # fmt: skip
    rows = []
    for e in data["configs"]:
        rows.append([
            e["name"], str(e["live"]), cell(e, "handshake"), cell(e, "create_pollable_event"),
            cell(e, "get_new_thread"), cell(e, "clone"), prop(e, "p1"), prop(e, "p2"),
            prop(e, "p3"), str(e["batches"]),
        ])  # fmt: skip
    return header, rows


COMPARE_LEGEND = (
    "Medians per thread (the median over batches of each batch's median), each with its 95% "
    "bootstrap interval in brackets.  start: the application's threading.Thread(target=f)"
    ".start(), natively or with the LibOS installed under threading, so ÷ native is what the "
    "LibOS adds; clone: the LibOS clone path inside it.  host calls: per thread, its whole "
    "life (creation, "
    "handshake traffic, exit).  projected: measured cycles + host calls × the per-call cost, "
    "and beside it at 8,000–17,000 cycles per call, the published range.  RSS / live: resident "
    "memory per thread kept alive, asleep on its event."
)


def compare_rows(data: Data) -> tuple[list[str], list[list[str]]]:
    """Medians side by side, with ratios and the projected SGX cost."""
    analyse(data)
    ghz = float(data["settings"]["ghz"])
    header = [
        "config", "live", "start µs", "÷ native", "clone µs", "÷ sgx/pipe",
        "create_pollable_event µs", "host calls", "projected µs", "at 8k–17k cycles",
        "RSS / live",
    ]  # fmt: skip
    rows = []
    for e in data["configs"]:
        proj = e.get("projection")
        rss = e.get("rss_per_live_thread_kib")
        chosen = low = high = "-"
        if proj is not None:
            lo_c, mid_c, hi_c = proj["cycles"]
            chosen = f"{mid_c / ghz / 1000:,.1f}"
            low, high = f"{lo_c / ghz / 1000:,.1f}", f"{hi_c / ghz / 1000:,.1f}"
        rows.append([
            e["name"], str(e["live"]), _fmt(_iv(e, "start.median"), _us),
            _fmt(_ratio_iv(e, "start ÷ native"), _x), _fmt(_iv(e, "clone.median"), _us),
            _fmt(_ratio_iv(e, "clone ÷ sgx/pipe"), _x),
            _fmt(_iv(e, "create_pollable_event.median"), _us),
            f"{e['host_calls_per_clone']:.2f}", chosen,
            "-" if proj is None else f"{low}–{high}",
            "-" if rss is None else f"{rss:,.1f} KiB",
        ])  # fmt: skip
    return header, rows


@dataclass(frozen=True)
class Target:
    what: str
    value: Interval | None
    limit: float
    at_most: bool
    lives: tuple[int, ...] = ()

    @property
    def verdict(self) -> str:
        """``met`` or ``missed`` only when the whole interval is on one side of the limit."""
        v = self.value
        if v is None:
            return "-"
        if v.low is None or v.high is None:
            return "inconclusive"
        good = (v.high <= self.limit) if self.at_most else (v.low >= self.limit)
        bad = (v.low > self.limit) if self.at_most else (v.high < self.limit)
        return "met" if good else "missed" if bad else "inconclusive"

    @property
    def met(self) -> bool | None:
        return {"met": True, "missed": False}.get(self.verdict)

    def as_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "value": None if self.value is None else self.value.as_json(),
            "limit": self.limit,
            "at_most": self.at_most,
            "lives": list(self.lives),
            "verdict": self.verdict,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Target:
        value = None if d["value"] is None else Interval.from_json(d["value"])
        return Target(d["what"], value, d["limit"], d["at_most"], tuple(d.get("lives", ())))


def targets(data: Data, figures: Figures | None = None) -> list[Target]:
    """The project's targets, checked against this run (those its configurations allow)."""
    f = figures or Figures(data)
    out: list[Target] = []
    lives = _lives(data)
    if not lives:
        return out  # interrupted before anything was measured

    def entry(name: str) -> Entry | None:
        return find(data, name, lives[0])

    one = (lives[0],)
    raw, pipe, native = entry("sgx/raw"), entry("sgx/pipe"), entry("native")
    if raw and pipe:
        r = ratio(data, raw, "sgx/pipe", figures=f)
        out.append(Target("clone: sgx/raw ÷ sgx/pipe", r, 0.25, True, one))
        r = ratio(data, raw, "sgx/pipe", "create_pollable_event", figures=f)
        out.append(Target("create_pollable_event: sgx/raw ÷ sgx/pipe", r, 0.10, True, one))
    for name, limit in (("sgx/eventfd", 1.15), ("sgx/raw+pool", 1.10)):
        e = entry(name)
        if e and native:
            r = ratio(data, e, "native", "start", figures=f)
            out.append(Target(f"start: {name} ÷ native", r, limit, True, one))
    for name, limit in (("sgx/eventfd", 3.0), ("sgx/raw+pool", 1.1)):
        e = entry(name)
        if e:
            # A count, the same on every machine: no sampling error.
            calls = exact(float(e["host_calls_per_clone"]))
            out.append(Target(f"host calls per clone: {name}", calls, limit, True, one))
    if pipe:
        out.append(Target("sgx/pipe p2", f.interval(pipe, "p2"), 0.6, False, one))
        out.append(Target("sgx/pipe p3", f.interval(pipe, "p3"), 0.5, False, one))
    if len(lives) > 1:
        lo, hi = lives[0], lives[-1]
        for name in dict.fromkeys(e["name"] for e in data["configs"]):
            b = find(data, name, hi)
            scaling = None if b is None else _live_scaling(data, b, f)
            if scaling is not None:
                value = Interval.from_json(scaling["relative_to_native"])
                what = f"start at {hi} live ÷ at {lo} live, ÷ native's: {name}"
                out.append(Target(what, value, 1.15, True, (lo, hi)))
    return out


def analyse(data: Data, *, force: bool = False) -> Data:
    """Add to ``data`` (in place, and return it) what every rendering shows and the JSON
    keeps: each figure's interval, the ratios, the projection's range, the targets with
    their verdicts and the stability warnings.  Done once; ``force`` does it again."""
    if "targets" in data and not force:
        return data
    f = Figures(data)
    ghz = float(data["settings"]["ghz"])
    chosen = int(data["settings"]["ocall_cycles"])
    for e in data["configs"]:
        intervals: dict[str, Any] = {}
        for phase in TIMED:
            for stat in ("median", "mean"):
                iv = f.interval(e, f"{phase}.{stat}")
                if iv is not None:
                    intervals[f"{phase}.{stat}"] = iv.as_json()
        for name in PROPORTIONS:
            iv = f.interval(e, name)
            if iv is not None:
                intervals[name] = iv.as_json()
        e["intervals"] = intervals
        ratios: dict[str, Any] = {}
        for base, phase in (
            ("sgx/pipe", "clone"),
            ("native", "start"),
            ("sgx/pipe", "create_pollable_event"),
        ):
            r = ratio(data, e, base, phase, figures=f)
            if r is not None:
                ratios[f"{phase} ÷ {base}"] = r.as_json()
        e["ratios"] = ratios
        start = f.value(e, "start.median")
        e["projection"] = (
            None
            if start is None
            else projection(start, ghz, float(e["host_calls_per_clone"]), chosen)
        )
        e["live_scaling"] = _live_scaling(data, e, f)
    data["targets"] = [t.as_json() for t in targets(data, f)]
    stability = data.setdefault("stability", {})
    stability["warnings"] = stability_warnings(data)
    return data


def _live_scaling(data: Data, entry: Entry, f: Figures) -> dict[str, Any] | None:
    """At the run's highest live count: (start there ÷ at the lowest) ÷ native's same
    quotient, so what the machine and CPython do with many threads cancels and what is
    left is the LibOS's doing."""
    lives = _lives(data)
    if len(lives) < 2 or entry["live"] != lives[-1] or entry["name"] == "native":
        return None
    lo, hi = lives[0], lives[-1]
    a, na, nb = find(data, entry["name"], lo), find(data, "native", lo), find(data, "native", hi)
    if a is None or na is None or nb is None:
        return None
    key = "start.median"
    iv = quotient([(f, entry, key), (f, na, key)], [(f, a, key), (f, nb, key)])
    return None if iv is None else {"from": lo, "to": hi, "relative_to_native": iv.as_json()}


def stored_targets(data: Data) -> list[Target]:
    return [Target.from_json(t) for t in analyse(data)["targets"]]


def target_rows(data: Data) -> tuple[list[str], list[list[str]]]:
    rows = []
    for t in stored_targets(data):
        rows.append(
            [t.what, _fmt(t.value, _x), f"{'≤' if t.at_most else '≥'} {t.limit:g}", t.verdict]
        )
    return ["target", "value (95% interval)", "limit", "verdict"], rows


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


_TLS_NAMES = {"mbedtls": "mbed TLS", "openssl": "OpenSSL"}


def describe(data: Data) -> str:
    m, s = data["machine"], data["settings"]
    stab = data.get("stability") or {}
    before, after = stab.get("load_before"), stab.get("load_after")
    load = ""
    if before and after:
        load = f"; load average {before[0]:.2f} before, {after[0]:.2f} after"
    governor = f", governor {stab['governor']}" if stab.get("governor") else ""
    return (
        f"{m['cpu']}, {m['cores']} cores{governor}, Python {m['python']}, pylibos "
        f"{m['pylibos']}; "
        + (f"TLS by {_TLS_NAMES.get(s['tls'], s['tls'])}; " if s.get("tls") else "")
        + f"duration {s['duration_s']:g} s per configuration in {s['rounds']} "
        f"rounds, batch {s['batch']}, {s['ghz']:g} GHz for cycles, {s['ocall_cycles']:,} "
        "cycles per host call in the projection"
        + load
        + ("; INTERRUPTED, partial" if data.get("interrupted") else "")
    )


def warnings(data: Data) -> list[str]:
    return list(analyse(data)["stability"]["warnings"])


def markdown(data: Data) -> str:
    analyse(data)
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
        "## The seed's table (means per call, cycles at the run's GHz, 95% intervals)",
        "",
        _md(*seed_rows(data, cycles=True)),
        "",
        "## Targets",
        "",
        "A verdict is met or missed only when the whole 95% interval is on one side of the "
        "limit; otherwise it is inconclusive.",
        "",
        _md(*target_rows(data)),
        "",
    ]
    notes = warnings(data)
    if notes:
        parts += ["## Stability warnings", "", *(f"* {w}" for w in notes), ""]
    return "\n".join(parts)


_SEGMENTS = (
    ("handshake ops", "handshake", None),
    ("rest of create_pollable_event", "create_pollable_event", "handshake"),
    ("rest of get_new_thread", "get_new_thread", "create_pollable_event"),
    ("rest of clone (PAL thread create)", "clone", "get_new_thread"),
    ("rest of Thread.start() (threading, the hook)", "start", "clone"),
)


def _errs(ivs: list[Interval | None], scale: float) -> list[list[float]]:
    """matplotlib's ``xerr``: distances below and above each value (0 where unknown)."""
    below, above = [], []
    for iv in ivs:
        if iv is None or iv.low is None or iv.high is None:
            below.append(0.0)
            above.append(0.0)
        else:
            below.append(max(0.0, iv.value - iv.low) * scale)
            above.append(max(0.0, iv.high - iv.value) * scale)
    return [below, above]


def plot(data: Data, path: str) -> None:
    """Each configuration's ``Thread.start()`` broken into its phases (means, so parts add
    up, with
    the 95% interval of the whole), and beside it the projected SGX cost with host calls
    priced in (the interval of the measured median; whiskers for 8,000–17,000 cycles per
    host call)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    analyse(data)
    entries = data["configs"]
    labels = [
        e["name"] + (f" ({e['live']} live)" if len(_lives(data)) > 1 else "") for e in entries
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.55 * len(entries) + 2.2), sharey=True)
    ys = list(range(len(entries)))
    left = [0.0] * len(entries)
    colors = ("#c0392b", "#e67e22", "#2980b9", "#7f8c8d", "#bdc3c7")
    for (label, phase, minus), color in zip(_SEGMENTS, colors, strict=True):
        widths = []
        for e in entries:
            total = _phase(e, phase, "mean")
            sub = _phase(e, minus, "mean") if minus else 0.0
            widths.append(max(0.0, ((total or 0.0) - (sub or 0.0)) / 1000))
        ax1.barh(ys, widths, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax1.errorbar(
        left,
        ys,
        xerr=_errs([_iv(e, "start.mean") for e in entries], 1 / 1000),
        fmt="none",
        ecolor="black",
        capsize=3,
        label="95% interval",
    )
    ax1.set_yticks(ys, labels)
    ax1.invert_yaxis()
    ax1.set_xlabel("µs per Thread.start() (mean), measured")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_title("Thread creation, by phase")
    ghz = float(data["settings"]["ghz"])
    proj = [(e.get("projection") or {"cycles": [0.0] * 3})["cycles"] for e in entries]
    clone_ivs = [_iv(e, "start.median") for e in entries]
    measured = [(iv.value if iv else 0.0) * ghz / 1e3 for iv in clone_ivs]
    ax2.barh(ys, measured, color="#34495e", label="measured (median)")
    ax2.errorbar(
        measured, ys, xerr=_errs(clone_ivs, ghz / 1e3), fmt="none", ecolor="white", capsize=3
    )
    ax2.barh(
        ys,
        [p[1] / 1e3 - m for p, m in zip(proj, measured, strict=True)],
        left=measured,
        color="#95a5a6",
        label=f"host calls × {data['settings']['ocall_cycles']:,} cycles",
    )
    ax2.errorbar(
        [p[1] / 1e3 for p in proj],
        ys,
        xerr=[[(p[1] - p[0]) / 1e3 for p in proj], [(p[2] - p[1]) / 1e3 for p in proj]],
        fmt="none",
        ecolor="black",
        capsize=3,
        label="at 8,000–17,000 cycles per host call",
    )
    ax2.set_xlabel("thousand cycles per Thread.start(), projected for SGX")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_title("Projected SGX cost")
    fig.suptitle(describe(data), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def vs_rows(a: Data, b: Data) -> tuple[list[str], list[list[str]], str]:
    """Two runs side by side: each phase median in A and B, and B ÷ A with its interval;
    "no significant change" where the interval holds 1 (as ``pyperf compare_to``)."""
    header = ["config", "live", "phase", "A µs", "B µs", "B ÷ A (95% interval)", "change"]
    rows = []
    same = known = 0
    for c in changes(a, b):
        sig = c.significant
        if sig is None:
            verdict = "no interval"
        elif not sig:
            verdict = "no significant change"
            same += 1
        else:
            verdict = "slower" if c.ratio.value > 1 else "faster"
        known += sig is not None
        rows.append([
            c.name, str(c.live), c.phase, _us(c.a_ns), _us(c.b_ns), _fmt(c.ratio, _x), verdict,
        ])  # fmt: skip
    summary = (
        f"{same} of {known} figures with an interval show no significant change"
        + (f" ({same / known:.0%})" if known else "")
        + f"; {known - same} changed."
    )
    return header, rows, summary


def vs_markdown(a: Data, b: Data, names: tuple[str, str], notes: list[str]) -> str:
    header, rows, summary = vs_rows(a, b)
    parts = [
        "# pylibos: two runs compared",
        "",
        f"A: {names[0]}: {describe(a)}",
        "",
        f"B: {names[1]}: {describe(b)}",
        "",
        _md(header, rows),
        "",
        summary,
        "",
    ]
    if notes:
        parts += ["## Differences between the runs", "", *(f"* {n}" for n in notes), ""]
    return "\n".join(parts)
