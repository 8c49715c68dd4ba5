"""Two saved runs side by side (``pylibos report A.json --vs B.json``): what differs between
them, and the comparison table: B ÷ A for every figure with its interval, as measured and
with the machine's drift removed (``_drift`` draws both), each judged, and the targets of
both runs with their verdicts.

Ratios to native within a run (``start ÷ native``, live scaling) have the machine divided
out already, in the run: the targets table compares them as they are, not corrected again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._schema import RunData
from ._analyse import SHORT, ratios_in_rounds, statistic_of, stored_targets
from ._drift import Change, changes, excludes_one, reference_drift
from ._resample import RESAMPLES
from ._stats import Interval
from ._text import describe, md, us, with_interval, x3

_SETTINGS_COMPARED = ("duration_s", "batch", "rounds", "live", "ocall_cycles", "ghz")
_MACHINE_COMPARED = ("cpu", "cores", "python", "pylibos")
_COUNTS_COMPARED = (
    (
        "processes",
        "settings differ: {0} measuring processes per configuration in A and {1} in B "
        "(formats {2} and {3}): an interval drawn over several processes holds the spread "
        "between them, one drawn in one process does not, so B ÷ A's interval holds it only "
        "as far as the run with more does",
    ),
    (
        "profile_every",
        "settings differ: the phase profile timed one clone in {0} in A and one in {1} in B "
        "(formats {2} and {3}; a run without the setting timed every clone): each start paid "
        "its share of the profile's cost, so the start figures differ by the method",
    ),
)
"""Settings that are counts (1 where a run has none), and what a difference means."""


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
    normalised = [any(t.normalised for t in stored_targets(d)) for d in (a, b)]
    if normalised[0] != normalised[1]:
        sides = ("A", "B") if normalised[0] else ("B", "A")
        out.append(
            "methods differ: the ratios between configurations and live scaling are taken on "
            f"times normalised by the reference workload in {sides[0]} and as measured in "
            f"{sides[1]} (formats {a['version']} and {b['version']}, or --no-reference): "
            "their values and intervals may differ by the method (the targets table marks "
            "them)"
        )
    for key, say in _COUNTS_COMPARED:
        counts = [d["settings"].get(key) or 1 for d in (a, b)]
        if counts[0] != counts[1]:
            out.append(say.format(*counts, a["version"], b["version"]))
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


def _word(sig: bool | None, iv: Interval | None) -> str:
    if iv is None:
        return "-"
    if sig is None:
        return "no interval"
    if not sig:
        return "no significant change"
    return "slower" if iv.value > 1 else "faster"


@dataclass(frozen=True)
class Comparison:
    """Every figure of two runs compared, judged with the machine's drift removed (the
    default) or raw (``raw``)."""

    changes: list[Change]
    raw: bool = False
    caveat: str = ""
    """Said after the drift: why native's change may be more than the machine's."""
    reference: Interval | None = None
    """The reference workload's B ÷ A, where both runs have references (format 9)."""

    def judged(self, c: Change) -> bool | None:
        return c.raw_significant if self.raw else c.significant

    def counted(self) -> list[Change]:
        """The figures the headline counts: raw, all with an interval; with the drift
        removed, all but native's own (they are the drift), each with an interval."""
        if self.raw:
            return [c for c in self.changes if c.raw_significant is not None]
        return [c for c in self.changes if not c.machine and c.significant is not None]

    def same(self, raw: bool) -> tuple[int, int]:
        """(figures with no significant change, figures with an interval), judged raw or
        with the drift removed."""
        view = Comparison(self.changes, raw, self.caveat, self.reference)
        counted = view.counted()
        return sum(not view.judged(c) for c in counted), len(counted)

    def machine_lines(self) -> list[str]:
        """Native's B ÷ A at each live count: the machine's drift between the runs."""
        out = []
        for c in self.changes:
            if c.machine and c.phase == "start":
                out.append(
                    f"native ×{with_interval(c.ratio, x3)} at {c.live:,} live "
                    f"({_word(c.raw_significant, c.ratio)})"
                )
        return out

    def summary(self) -> str:
        """The headline (as judged), then the other judgment, and what the machine did."""
        same, known = self.same(self.raw)
        other_same, other_known = self.same(not self.raw)
        drift = self.machine_lines()
        removed = any(c.corrected is not None for c in self.changes)
        share = f" ({same / known:.0%})" if known else ""
        other_share = f" ({other_same / other_known:.0%})" if other_known else ""
        if self.raw or not removed:
            head = (
                f"{same} of {known} figures with an interval show no significant change"
                f"{share}; {known - same} changed"
                + (" (raw B ÷ A, the machine's drift not removed)." if removed else ".")
            )
        else:
            head = (
                f"{same} of {known} figures with an interval show no significant change once "
                f"the machine's drift is removed{share}; {known - same} changed."
            )
        parts = [head]
        if drift:
            parts.append("Machine drift between the runs: " + "; ".join(drift) + ".")
        if self.reference is not None:
            verdicts = [excludes_one(c.by_reference) for c in self.changes if c.by_reference]
            known_ref = [v for v in verdicts if v is not None]
            same_ref = sum(not v for v in known_ref)
            parts.append(
                f"The reference workload's B ÷ A: {with_interval(self.reference, x3)} "
                f"({_word(excludes_one(self.reference), self.reference)}); with it removed "
                f"instead of native's, {same_ref} of {len(known_ref)} figures show no "
                "significant change, native's among them."
            )
        if removed:
            moved = [c for c in self.changes if c.raw_significant and not c.machine]
            machine = [c for c in moved if c.corrected_significant is False]
            only = [
                c for c in self.changes if c.corrected_significant and c.raw_significant is False
            ]
            if self.raw:
                parts.append(
                    f"With native's drift removed: {other_same} of {other_known} figures show "
                    f"no significant change{other_share} (native's own figures not counted)."
                )
            else:
                parts.append(
                    f"Raw B ÷ A: {other_same} of {other_known} figures show no significant "
                    f"change{other_share}, native's among them (--raw judges by it)."
                )
            if moved:
                parts.append(
                    f"Of the {len(moved)} figures besides native's that moved raw, "
                    f"{len(machine)} show no significant change once native's B ÷ A is "
                    "removed."
                )
            if only:
                parts.append(f"{len(only)} changed only once it is removed.")
            alone = [c for c in self.changes if not c.machine and c.corrected is None]
            if alone:
                parts.append(
                    f"{len(alone)} figures at live counts native lacks in a run are judged raw."
                )
            if self.caveat:
                parts.append(self.caveat)
        else:
            parts.append(
                "native is not in both runs: the machine's drift cannot be removed (judged raw)."
            )
        return " ".join(parts)


_SHORT = {"no significant change": "n.s.", "no interval": "-"}
"""The second judgment's words, short (the table is wide)."""


def compare_runs(
    a: RunData, b: RunData, *, raw: bool = False, resamples: int = RESAMPLES
) -> Comparison:
    """Every figure of ``a`` and ``b`` compared (``changes``), judged raw or not."""
    caveat = ""
    pythons = a["machine"].get("python"), b["machine"].get("python")
    if pythons[0] != pythons[1]:
        caveat = (
            f"The runs ran on different Pythons ({pythons[0]} and {pythons[1]}): native's "
            "change is CPython's as well as the machine's, and removing it is not sound "
            "(--raw judges without it)."
        )
    ref = reference_drift(a, b, resamples=resamples)
    found = list(changes(a, b, resamples=resamples))
    return Comparison(found, raw, caveat, None if ref is None else ref[0])


def vs_rows(a: RunData, b: RunData, *, raw: bool = False) -> tuple[list[str], list[list[str]], str]:
    """Two runs side by side: each phase median in A and B, B ÷ A with its interval, and
    (B ÷ A) ÷ native's B ÷ A at the same live count with its interval, the figure's change
    with the machine's drift removed; "no significant change" where an interval holds 1
    (as ``pyperf compare_to``), judged on the drift-removed interval (``raw``: on B ÷ A).
    Native's own rows are the machine: judged on their B ÷ A, and not counted with the
    drift removed."""
    comparison = compare_runs(a, b, raw=raw)
    other = "drift removed" if raw else "raw"
    header = [
        "config", "live", "phase", "A µs", "B µs", "B ÷ A (95%)", "÷ native's B ÷ A (95%)",
        "change", other,
    ]  # fmt: skip
    rows = []
    for c in comparison.changes:
        raw_word = _word(c.raw_significant, c.ratio)
        if c.machine:
            removed = "the machine"
            judged, second = (raw_word, removed) if raw else (f"{removed}: {raw_word}", "")
        else:
            removed = _word(c.corrected_significant, c.corrected)
            if c.corrected is None:
                removed = "-"
                judged, second = raw_word, removed
            else:
                judged, second = (raw_word, removed) if raw else (removed, raw_word)
        rows.append([
            c.name, str(c.live), c.phase, us(c.a_ns), us(c.b_ns), with_interval(c.ratio, x3),
            with_interval(c.corrected, x3), judged, _SHORT.get(second, second),
        ])  # fmt: skip
    return header, rows, comparison.summary()


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
        word_a = SHORT.get(how_a, how_a) + (", normalised" if ta.normalised else "")
        word_b = SHORT.get(how_b, how_b) + (", normalised" if tb.normalised else "")
        words = word_a, word_b
        # Normalised by the reference in one run only: taken differently.
        how_a, how_b = f"{how_a} {ta.normalised}", f"{how_b} {tb.normalised}"
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
    summary = (
        f"{same} of {alike} targets taken alike give the same verdict in A and B (ratios to "
        "native and live scaling divide the machine out within each run: not corrected again)."
    )
    if alike < len(rows):
        summary += f" {len(rows) - alike} taken differently are not counted."
    return header, rows, summary


def vs_markdown(
    a: RunData, b: RunData, names: tuple[str, str], notes: list[str], *, raw: bool = False
) -> str:
    header, rows, summary = vs_rows(a, b, raw=raw)
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
