"""A run's analysis: each figure's interval, the ratios, the projection's range, the
targets with their verdicts, and the stability warnings, added to its JSON."""

from __future__ import annotations

from dataclasses import dataclass

from .._schema import TIMED, Entry, IntervalJSON, LiveScaling, RunData, TargetJSON
from ..libos import PROPORTIONS
from ._configs import START_LIMITS
from ._reference import ReferenceView, reference_view
from ._stats import (
    TRIM,
    Figures,
    Interval,
    Paired,
    exact,
    quotient,
)
from ._text import first, lives
from ._warnings import projected, stability_warnings


def find(data: RunData, name: str, live: int) -> Entry | None:
    return first(data["configs"], name=name, live=live)


PAIRED = f"trimmed mean ({TRIM:.0%} each end) of the rounds' quotients"
"""How a figure taken round by round is taken (``statistic`` in the JSON)."""
BY_PART = (
    f"quotient of the trimmed means ({TRIM:.0%} each end) of the configuration's and "
    "native's per-round quotients"
)
"""How live scaling is taken from format 8 (``Figures.paired_by_part``)."""
MEDIANS = "quotient of the two medians"
"""How a ratio of two configurations was taken before format 7."""
FOUR_MEDIANS = "quotient of the four medians"
"""How live scaling was taken before format 6."""
MEANS = "ratio of the means over all batches"
"""How the seed's proportions are taken (one configuration's phases)."""
COUNT = "count"
"""Host calls per clone: a count, with no sampling error."""
SHORT = {PAIRED: "per round", BY_PART: "per round, by part", MEDIANS: "two medians",
         FOUR_MEDIANS: "four medians", MEANS: "means", COUNT: "count"}  # fmt: skip
"""The target table's word for each statistic."""


def statistic_of(data: RunData, target: Target) -> str:
    """How ``target``'s figure was taken: as its run says (format 7 on) or, for earlier
    runs, as they were measured."""
    if target.statistic is not None:
        return target.statistic
    what = target.what
    if what.startswith("host calls"):
        return COUNT
    if what.startswith("sgx/pipe p"):
        return MEANS
    if what.startswith("start at"):
        settings = data["settings"]
        if not settings.get("live_in_same_rounds"):
            return FOUR_MEDIANS
        return BY_PART if settings.get("live_scaling_by_part") else PAIRED
    phase, _, rest = what.partition(": ")
    base = rest.rpartition(" ÷ ")[2]
    return PAIRED if f"{phase} ÷ {base}" in ratios_in_rounds(data) else MEDIANS


def ratios_in_rounds(data: RunData) -> frozenset[str]:
    """The ratios between configurations this run takes round by round, by their names in
    an entry's ``ratios`` (format 7 on; none before)."""
    settings = data["settings"]
    if not settings.get("live_in_same_rounds"):
        return frozenset()
    return frozenset(settings.get("ratios_in_rounds") or ())


def paired_ratio(
    data: RunData, entry: Entry, base: str, phase: str = "clone", figures: Figures | None = None
) -> tuple[Interval, Paired | None] | None:
    """``entry``'s ``phase`` over ``base``'s at the same live count, with the rounds'
    quotients when the run takes it round by round (``ratios_in_rounds``): the ``TRIM``
    trimmed mean of each round's quotient of the two slices' medians, its interval a
    bootstrap over the rounds (``Figures.paired``).  Otherwise (and in every run before
    format 7): the quotient of the two medians over all batches, with the interval drawn
    in stages ((replica slots,) rounds, batches)."""
    other = find(data, base, entry["live"])
    if other is None:
        return None
    f = figures or Figures(data)
    key = f"{phase}.median"
    if f"{phase} ÷ {base}" in ratios_in_rounds(data):
        paired = f.paired([entry], [other], key)
        return None if paired is None else (paired.interval, paired)
    iv = quotient([(f, entry, key)], [(f, other, key)])
    return None if iv is None else (iv, None)


def ratio(
    data: RunData, entry: Entry, base: str, phase: str = "clone", figures: Figures | None = None
) -> Interval | None:
    """``entry``'s ``phase`` over ``base``'s at the same live count (``paired_ratio``)."""
    taken = paired_ratio(data, entry, base, phase, figures)
    return None if taken is None else taken[0]


@dataclass(frozen=True)
class Target:
    what: str
    value: Interval | None
    limit: float
    at_most: bool
    lives: tuple[int, ...] = ()
    statistic: str | None = None
    """How the figure was taken, where a run says (format 7 on)."""
    rounds: tuple[int, ...] = ()
    per_round: tuple[float, ...] = ()
    normalised: bool = False
    """Taken on times normalised by each batch's reference (format 9)."""

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
        out: TargetJSON = {
            "what": self.what,
            "value": None if self.value is None else self.value.as_json(),
            "limit": self.limit,
            "at_most": self.at_most,
            "lives": list(self.lives),
            "verdict": self.verdict,
        }
        if self.statistic is not None:
            out["statistic"] = self.statistic
        if self.rounds:
            out["rounds"] = list(self.rounds)
            out["per_round"] = [round(v, 6) for v in self.per_round]
        if self.normalised:
            out["normalised"] = True
        return out

    @staticmethod
    def from_json(d: TargetJSON) -> Target:
        value = None if d["value"] is None else Interval.from_json(d["value"])
        return Target(
            d["what"],
            value,
            d["limit"],
            d["at_most"],
            tuple(d.get("lives", ())),
            d.get("statistic"),
            tuple(d.get("rounds", ())),
            tuple(d.get("per_round", ())),
            bool(d.get("normalised", False)),
        )


def _ratio_target(
    data: RunData,
    what: str,
    taken: tuple[Interval, Paired | None] | None,
    limit: float,
    lives: tuple[int, ...],
    normalised: bool = False,
) -> Target:
    """A target on a ratio of two configurations, saying how it was taken."""
    if taken is None:
        return Target(what, None, limit, True, lives)
    iv, paired = taken
    statistic = PAIRED if paired is not None else MEDIANS
    rounds = tuple(paired.rounds) if paired is not None else ()
    per_round = tuple(paired.per_round) if paired is not None else ()
    return Target(what, iv, limit, True, lives, statistic, rounds, per_round, normalised)


def ratio_figures(data: RunData, figures: Figures) -> tuple[Figures, ReferenceView]:
    """The figures a run's ratios between configurations and live scaling are taken on:
    normalised by each batch's reference where the run asks for it and can
    (``_reference``), otherwise ``figures`` (times as measured)."""
    view = reference_view(data)
    if view.data is None:
        return figures, view
    return figures.over(view.data), view


def counterpart(f: Figures, data: RunData, entry: Entry) -> Entry:
    """``entry`` of ``data`` as ``f`` holds it (its normalised copy, in the same place)."""
    if f.data is data:
        return entry
    position = next(i for i, e in enumerate(data["configs"]) if e is entry)
    return f.data["configs"][position]


def targets(
    data: RunData, figures: Figures | None = None, ratios: Figures | None = None
) -> list[Target]:
    """The project's targets, checked against this run (those its configurations allow).
    Ratios between configurations and live scaling are taken on ``ratios`` (by default
    ``ratio_figures``: normalised by the slices' references where the run asks for it);
    the seed's proportions, within one configuration's batches, on ``figures``."""
    out: list[Target] = []
    counts = lives(data)
    if not counts:
        return out  # interrupted before anything was measured
    f = figures or Figures(data)
    r = ratios if ratios is not None else ratio_figures(data, f)[0]
    rdata = r.data
    norm = r.data is not data

    def entry(name: str) -> Entry | None:
        return find(rdata, name, counts[0])

    one = (counts[0],)
    raw, pipe, native = entry("sgx/raw"), entry("sgx/pipe"), entry("native")
    if raw and pipe:
        for phase, limit in (("clone", 0.25), ("create_pollable_event", 0.10)):
            taken = paired_ratio(rdata, raw, "sgx/pipe", phase, figures=r)
            what = f"{phase}: sgx/raw ÷ sgx/pipe"
            out.append(_ratio_target(rdata, what, taken, limit, one, norm))
    for name, limit in START_LIMITS.items():
        e = entry(name)
        if e and native:
            taken = paired_ratio(rdata, e, "native", "start", figures=r)
            out.append(_ratio_target(rdata, f"start: {name} ÷ native", taken, limit, one, norm))
    for name, limit in (("sgx/eventfd", 3.0), ("sgx/raw+pool", 1.1)):
        e = entry(name)
        if e:
            # A count, the same on every machine: no sampling error.
            calls = exact(float(e["host_calls_per_clone"]))
            what = f"host calls per clone: {name}"
            out.append(Target(what, calls, limit, True, one, COUNT))
    raw_pipe = find(data, "sgx/pipe", counts[0])
    if raw_pipe:
        out.append(Target("sgx/pipe p2", f.interval(raw_pipe, "p2"), 0.6, False, one, MEANS))
        out.append(Target("sgx/pipe p3", f.interval(raw_pipe, "p3"), 0.5, False, one, MEANS))
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        for name in dict.fromkeys(e["name"] for e in rdata["configs"]):
            b = find(rdata, name, hi)
            scaling = None if b is None else _live_scaling(rdata, b, r)
            if scaling is not None:
                value = Interval.from_json(scaling["relative_to_native"])
                what = f"start at {hi} live ÷ at {lo} live, ÷ native's: {name}"
                out.append(
                    Target(
                        what,
                        value,
                        1.15,
                        True,
                        (lo, hi),
                        scaling.get("statistic"),
                        tuple(scaling.get("rounds", ())),
                        tuple(scaling.get("per_round", ())),
                        norm,
                    )
                )
    return out


def analyse(data: RunData, *, force: bool = False) -> RunData:
    """Add to ``data`` (in place, and return it) what every rendering shows and the JSON
    keeps: each figure's interval, the ratios, the projection's range, the targets with
    their verdicts and the stability warnings.  Done once; ``force`` does it again."""
    if "targets" in data and not force:
        return data
    f = Figures(data)
    r, view = ratio_figures(data, f)
    ghz = float(data["settings"]["ghz"])
    chosen = int(data["settings"]["ocall_cycles"])
    for e in data["configs"]:
        ne = counterpart(r, data, e)
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
            iv = ratio(r.data, ne, base, phase, figures=r)
            if iv is not None:
                ratios[f"{phase} ÷ {base}"] = iv.as_json()
        e["ratios"] = ratios
        e["projection"] = cost = projected(e, ghz, chosen)
        e["projected_cycles_per_clone"] = None if cost is None else cost["cycles"][1]
        e["live_scaling"] = _live_scaling(r.data, ne, r)
    data["targets"] = [t.as_json() for t in targets(data, f, r)]
    if view.reference_ns is not None:
        data["stability"]["reference_ns"] = round(view.reference_ns, 1)
    warnings = stability_warnings(data)
    if view.why is not None:
        warnings.append(
            f"reference: {view.why}; the ratios between configurations and live scaling "
            "are taken on times as measured, not normalised"
        )
    data["stability"]["warnings"] = warnings
    return data


def _live_scaling(data: RunData, entry: Entry, f: Figures) -> LiveScaling | None:
    """At the run's highest live count: (start there ÷ at the lowest) ÷ native's same
    quotient, so what the machine and CPython do with many threads cancels and what is
    left is the LibOS's doing.

    From format 8 (``settings.live_scaling_by_part``) the configuration's quotient and
    native's are each taken round by round and trimmed on their own, and the figure is the
    quotient of the two trimmed means (``Figures.paired_by_part``): the two parts hardly
    move together, so pairing them gained nothing, and each trims its own crowded rounds.

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
        parts = None
        if data["settings"].get("live_scaling_by_part"):
            parts = f.paired_by_part((entry, a), (nb, na), key)
            figure: Paired | None = parts
        else:
            figure = f.paired([entry, na], [a, nb], key)
        if figure is None:
            return None
        out: LiveScaling = {
            "from": lo,
            "to": hi,
            "relative_to_native": figure.interval.as_json(),
            "statistic": PAIRED if parts is None else BY_PART,
            "rounds": figure.rounds,
            "per_round": [round(v, 4) for v in figure.per_round],
        }
        if parts is not None:
            out["own_per_round"] = [round(v, 4) for v in parts.own]
            out["native_per_round"] = [round(v, 4) for v in parts.base]
        return out
    iv = quotient([(f, entry, key), (f, na, key)], [(f, a, key), (f, nb, key)])
    return None if iv is None else {"from": lo, "to": hi, "relative_to_native": iv.as_json()}


def stored_targets(data: RunData) -> list[Target]:
    return [Target.from_json(t) for t in analyse(data).get("targets", [])]
