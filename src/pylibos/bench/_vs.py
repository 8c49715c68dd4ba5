"""Two saved runs side by side (``pylibos report A.json --vs B.json``): what differs between
them, and B ÷ A for every figure with its interval."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .._schema import TIMED, RunData
from ._analyse import SHORT, ratios_in_rounds, statistic_of, stored_targets
from ._stats import Figures, Interval, ratio_of
from ._text import describe, md, us, with_interval, x3

_SETTINGS_COMPARED = ("duration_s", "batch", "rounds", "live", "ocall_cycles", "ghz")
_MACHINE_COMPARED = ("cpu", "cores", "python", "pylibos")


def differences(a: RunData, b: RunData) -> list[str]:
    """Each setting or machine property two runs differ in, named with both values."""
    out = []
    if (a["version"] >= 4) != (b["version"] >= 4):
        out.append(
            f"format versions differ: {a['version']} in A and {b['version']} in B (version 4 on "
            "measures each configuration in a process of its own on one CPU, version 3 all "
            "in one process on any CPU): a change may be the method's"
        )
    together = [bool(d["settings"].get("live_in_same_rounds")) for d in (a, b)]
    if together[0] != together[1] and len(a["settings"]["live"]) > 1:
        out.append(
            f"format versions differ: {a['version']} in A and {b['version']} in B (version 6 "
            "on measures every live count in the same rounds, a configuration's live counts "
            "back to back; before, each live count in rounds of its own): live scaling and "
            "its interval may change with the method"
        )
    in_rounds = [ratios_in_rounds(d) for d in (a, b)]
    if in_rounds[0] != in_rounds[1]:
        for name in sorted(in_rounds[0] ^ in_rounds[1]):
            sides = ("A", "B") if name in in_rounds[0] else ("B", "A")
            out.append(
                f"methods differ: {name} is taken per round in {sides[0]} and as two medians "
                f"in {sides[1]} (formats {a['version']} and {b['version']}): its values and "
                "intervals may differ by the method (the targets table marks them)"
            )
    by_part = [bool(d["settings"].get("live_scaling_by_part")) for d in (a, b)]
    if all(together) and by_part[0] != by_part[1] and len(a["settings"]["live"]) > 1:
        sides = ("A", "B") if by_part[0] else ("B", "A")
        out.append(
            f"methods differ: live scaling is the quotient of each part's trimmed mean in "
            f"{sides[0]}, with native measured twice a round, and the trimmed mean of the "
            f"rounds' whole quotients in {sides[1]} (formats {a['version']} and "
            f"{b['version']}): its values and intervals may differ by the method (the "
            "targets table marks them)"
        )
    pairs: tuple[tuple[str, Mapping[str, object], Mapping[str, object], tuple[str, ...]], ...]
    pairs = (
        ("settings", a["settings"], b["settings"], _SETTINGS_COMPARED),
        ("machine", a["machine"], b["machine"], _MACHINE_COMPARED),
    )
    for where, sa, sb, keys in pairs:
        for k in keys:
            va, vb = sa.get(k), sb.get(k)
            if va != vb:
                out.append(f"{where} differ: {k} is {va!r} in A and {vb!r} in B")
    pinned = [d["version"] >= 4 and d["settings"].get("cpu") is not None for d in (a, b)]
    if pinned[0] != pinned[1]:
        out.append(
            "settings differ: "
            + ("A on one CPU, B on every CPU" if pinned[0] else "A on every CPU, B on one CPU")
        )
    names_a = {(e["name"], e["live"]) for e in a["configs"]}
    names_b = {(e["name"], e["live"]) for e in b["configs"]}
    for only, which in ((names_a - names_b, "A"), (names_b - names_a, "B")):
        for name, live in sorted(only):
            out.append(f"{name} at {live} live is only in {which}: not compared")
    if a.get("interrupted") or b.get("interrupted"):
        out.append("a run was interrupted: its figures are partial")
    return out


@dataclass(frozen=True)
class Change:
    name: str
    live: int
    phase: str
    a_ns: float
    b_ns: float
    ratio: Interval

    @property
    def significant(self) -> bool | None:
        """None when no interval could be drawn; else whether it excludes 1."""
        if not self.ratio.known:
            return None
        return not self.ratio.holds(1.0)


def changes(a: RunData, b: RunData) -> Iterator[Change]:
    """B ÷ A for each phase median of each configuration and live count in both runs."""
    fa, fb = Figures(a, seed=0), Figures(b, seed=1)
    for eb in b["configs"]:
        ea = next(
            (e for e in a["configs"] if e["name"] == eb["name"] and e["live"] == eb["live"]),
            None,
        )
        if ea is None:
            continue
        for phase in TIMED:
            key = f"{phase}.median"
            va, vb = fa.value(ea, key), fb.value(eb, key)
            if va is None or vb is None or not va:
                continue
            r = ratio_of(fb, (eb, key), fa, (ea, key))
            assert r is not None
            yield Change(eb["name"], eb["live"], phase, va, vb, r)


def vs_rows(a: RunData, b: RunData) -> tuple[list[str], list[list[str]], str]:
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
            c.name, str(c.live), c.phase, us(c.a_ns), us(c.b_ns),
            with_interval(c.ratio, x3), verdict,
        ])  # fmt: skip
    summary = (
        f"{same} of {known} figures with an interval show no significant change"
        + (f" ({same / known:.0%})" if known else "")
        + f"; {known - same} changed."
    )
    return header, rows, summary


def vs_target_rows(a: RunData, b: RunData) -> tuple[list[str], list[list[str]], str]:
    """Each target of both runs: its value and verdict in A and in B, how each was taken,
    and whether the verdicts agree; a target taken differently in the two runs is marked
    (not alike), and left out of the count."""
    header = ["target", "A (95% interval)", "A", "B (95% interval)", "B", "taken as", "same"]
    in_b = {t.what: t for t in stored_targets(b)}
    rows = []
    same = alike = 0
    for ta in stored_targets(a):
        tb = in_b.get(ta.what)
        if tb is None:
            continue
        how_a, how_b = statistic_of(a, ta), statistic_of(b, tb)
        words = SHORT.get(how_a, how_a), SHORT.get(how_b, how_b)
        if how_a != how_b:
            taken, agree = f"A {words[0]}, B {words[1]}", "not alike"
        else:
            alike += 1
            same += ta.verdict == tb.verdict
            taken, agree = words[0], "yes" if ta.verdict == tb.verdict else "no"
        rows.append([
            ta.what, with_interval(ta.value, x3), ta.verdict,
            with_interval(tb.value, x3), tb.verdict, taken, agree,
        ])  # fmt: skip
    summary = f"{same} of {alike} targets taken alike give the same verdict in A and B."
    if alike < len(rows):
        summary += f" {len(rows) - alike} taken differently are not counted."
    return header, rows, summary


def vs_markdown(a: RunData, b: RunData, names: tuple[str, str], notes: list[str]) -> str:
    header, rows, summary = vs_rows(a, b)
    t_header, t_rows, t_summary = vs_target_rows(a, b)
    parts = [
        "# pylibos: two runs compared",
        "",
        f"A: {names[0]}: {describe(a)}",
        "",
        f"B: {names[1]}: {describe(b)}",
        "",
        md(header, rows),
        "",
        summary,
        "",
        "## Targets",
        "",
        md(t_header, t_rows),
        "",
        t_summary,
        "",
    ]
    if notes:
        parts += ["## Differences between the runs", "", *(f"* {n}" for n in notes), ""]
    return "\n".join(parts)
