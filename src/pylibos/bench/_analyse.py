"""A run's analysis: each figure's interval, the ratios, the projection's range, the
targets with their verdicts, and the stability warnings, added to its JSON."""

from __future__ import annotations

from dataclasses import dataclass

from .._schema import TIMED, Entry, IntervalJSON, LiveScaling, RunData, TargetJSON
from ..libos import PROPORTIONS
from ._stats import TRIM, Figures, Interval, exact, projected, quotient, stability_warnings
from ._text import first, lives


def find(data: RunData, name: str, live: int) -> Entry | None:
    return first(data["configs"], name=name, live=live)


def ratio(
    data: RunData, entry: Entry, base: str, phase: str = "clone", figures: Figures | None = None
) -> Interval | None:
    """``entry``'s median of ``phase`` over ``base``'s at the same live count."""
    other = find(data, base, entry["live"])
    if other is None:
        return None
    f = figures or Figures(data)
    key = f"{phase}.median"
    return quotient([(f, entry, key)], [(f, other, key)])


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

    def as_json(self) -> TargetJSON:
        return {
            "what": self.what,
            "value": None if self.value is None else self.value.as_json(),
            "limit": self.limit,
            "at_most": self.at_most,
            "lives": list(self.lives),
            "verdict": self.verdict,
        }

    @staticmethod
    def from_json(d: TargetJSON) -> Target:
        value = None if d["value"] is None else Interval.from_json(d["value"])
        return Target(d["what"], value, d["limit"], d["at_most"], tuple(d.get("lives", ())))


def targets(data: RunData, figures: Figures | None = None) -> list[Target]:
    """The project's targets, checked against this run (those its configurations allow)."""
    f = figures or Figures(data)
    out: list[Target] = []
    counts = lives(data)
    if not counts:
        return out  # interrupted before anything was measured

    def entry(name: str) -> Entry | None:
        return find(data, name, counts[0])

    one = (counts[0],)
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
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        for name in dict.fromkeys(e["name"] for e in data["configs"]):
            b = find(data, name, hi)
            scaling = None if b is None else _live_scaling(data, b, f)
            if scaling is not None:
                value = Interval.from_json(scaling["relative_to_native"])
                what = f"start at {hi} live ÷ at {lo} live, ÷ native's: {name}"
                out.append(Target(what, value, 1.15, True, (lo, hi)))
    return out


def analyse(data: RunData, *, force: bool = False) -> RunData:
    """Add to ``data`` (in place, and return it) what every rendering shows and the JSON
    keeps: each figure's interval, the ratios, the projection's range, the targets with
    their verdicts and the stability warnings.  Done once; ``force`` does it again."""
    if "targets" in data and not force:
        return data
    f = Figures(data)
    ghz = float(data["settings"]["ghz"])
    chosen = int(data["settings"]["ocall_cycles"])
    for e in data["configs"]:
        intervals: dict[str, IntervalJSON] = {}
        for key in [f"{p}.{stat}" for p in TIMED for stat in ("median", "mean")] + list(
            PROPORTIONS
        ):
            iv = f.interval(e, key)
            if iv is not None:
                intervals[key] = iv.as_json()
        e["intervals"] = intervals
        ratios: dict[str, IntervalJSON] = {}
        for base, phase in (
            ("sgx/pipe", "clone"),
            ("native", "start"),
            ("sgx/pipe", "create_pollable_event"),
        ):
            r = ratio(data, e, base, phase, figures=f)
            if r is not None:
                ratios[f"{phase} ÷ {base}"] = r.as_json()
        e["ratios"] = ratios
        e["projection"] = cost = projected(e, ghz, chosen)
        e["projected_cycles_per_clone"] = None if cost is None else cost["cycles"][1]
        e["live_scaling"] = _live_scaling(data, e, f)
    data["targets"] = [t.as_json() for t in targets(data, f)]
    data["stability"]["warnings"] = stability_warnings(data)
    return data


def _live_scaling(data: RunData, entry: Entry, f: Figures) -> LiveScaling | None:
    """At the run's highest live count: (start there ÷ at the lowest) ÷ native's same
    quotient, so what the machine and CPython do with many threads cancels and what is
    left is the LibOS's doing.

    Measured with every live count in the same rounds (format 6), the quotient is taken
    round by round, from the four slices of each round (a configuration's two live counts
    back to back, native's two likewise), and the figure is the trimmed mean of the
    rounds' quotients on a log scale (``Figures.paired``): drift the slices of a round
    share cancels in its quotient, and the rounds most crowded by other processes, at
    either end, are left out.  Each round's quotient is kept in the JSON.  Files of
    earlier formats (each live count in rounds of its own) get the quotient of the four
    medians, as before."""
    counts = lives(data)
    if len(counts) < 2 or entry["live"] != counts[-1] or entry["name"] == "native":
        return None
    lo, hi = counts[0], counts[-1]
    a, na, nb = find(data, entry["name"], lo), find(data, "native", lo), find(data, "native", hi)
    if a is None or na is None or nb is None:
        return None
    key = "start.median"
    if data["settings"].get("live_in_same_rounds"):
        paired = f.paired([entry, na], [a, nb], key)
        if paired is None:
            return None
        return {
            "from": lo,
            "to": hi,
            "relative_to_native": paired.interval.as_json(),
            "statistic": f"trimmed mean ({TRIM:.0%} each end) of the rounds' quotients",
            "rounds": paired.rounds,
            "per_round": [round(v, 4) for v in paired.per_round],
        }
    iv = quotient([(f, entry, key), (f, na, key)], [(f, a, key), (f, nb, key)])
    return None if iv is None else {"from": lo, "to": hi, "relative_to_native": iv.as_json()}


def stored_targets(data: RunData) -> list[Target]:
    return [Target.from_json(t) for t in analyse(data).get("targets", [])]
