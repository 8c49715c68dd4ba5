"""Rendering a benchmark run: terminal tables and Markdown, all from its JSON (the plot is
``_plot``'s, two runs side by side ``_vs``'s)."""

from __future__ import annotations

from .._schema import Entry, RunData
from ._analyse import SHORT, ratios_in_rounds, statistic_of, stored_targets
from ._analyse import Target as Target
from ._analyse import analyse as analyse
from ._analyse import targets as targets
from ._plot import plot as plot
from ._resample import REPLICA_OF_ROUND, processes_of
from ._stats import TRIM
from ._text import describe as describe
from ._text import md, pct, stored, stored_ratio, us, with_interval, x3
from ._text import rich_table as rich_table
from ._vs import vs_markdown as vs_markdown
from ._vs import vs_rows as vs_rows


def seed_rows(data: RunData, *, cycles: bool) -> tuple[list[str], list[list[str]]]:
    """The seed's table: means per call (ns, or cycles at the run's GHz)."""
    ghz = float(data["settings"]["ghz"])
    unit = "cycles" if cycles else "µs"

    analyse(data)

    def cell(entry: Entry, phase: str) -> str:
        iv = stored(entry, f"{phase}.mean")
        if cycles:
            return with_interval(iv, lambda v: f"{v * ghz:,.0f}")
        return with_interval(iv, us)

    def prop(entry: Entry, name: str) -> str:
        return with_interval(stored(entry, name), pct)

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


def compare_rows(data: RunData) -> tuple[list[str], list[list[str]]]:
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
        rss = e["rss_per_live_thread_kib"]
        chosen = low = high = "-"
        if proj is not None:
            lo_c, mid_c, hi_c = proj["cycles"]
            chosen = f"{mid_c / ghz / 1000:,.1f}"
            low, high = f"{lo_c / ghz / 1000:,.1f}", f"{hi_c / ghz / 1000:,.1f}"
        rows.append([
            e["name"], str(e["live"]), with_interval(stored(e, "start.median"), us),
            with_interval(stored_ratio(e, "start ÷ native"), x3),
            with_interval(stored(e, "clone.median"), us),
            with_interval(stored_ratio(e, "clone ÷ sgx/pipe"), x3),
            with_interval(stored(e, "create_pollable_event.median"), us),
            f"{e['host_calls_per_clone']:.2f}", chosen,
            "-" if proj is None else f"{low}–{high}",
            "-" if rss is None else f"{rss:,.1f} KiB",
        ])  # fmt: skip
    return header, rows


def target_rows(data: RunData) -> tuple[list[str], list[list[str]]]:
    rows = []
    for t in stored_targets(data):
        limit = f"{'≤' if t.at_most else '≥'} {t.limit:g}"
        how = statistic_of(data, t)
        taken = SHORT.get(how, how) + (", normalised" if t.normalised else "")
        rows.append([t.what, with_interval(t.value, x3), limit, t.verdict, taken])
    return ["target", "value (95% interval)", "limit", "verdict", "taken as"], rows


def method_note(data: RunData) -> str | None:
    """How this run's ratios between configurations and its live scaling are taken (the
    target table's "taken as")."""
    analyse(data)
    ratios: str | None = None
    names = sorted({k for e in data["configs"] for k in e.get("ratios", {})})
    paired = [n for n in names if n in ratios_in_rounds(data)]
    medians = [n for n in names if n not in paired]
    parts = []
    if paired:
        parts.append(
            f"{', '.join(paired)}: per round, each round's quotient of the two "
            "configurations' slice medians, measured a few slices apart; the figure is the "
            f"rounds' {TRIM:.0%} trimmed mean (log scale), its interval a bootstrap over the "
            "rounds."
        )
    if medians:
        parts.append(
            f"{', '.join(medians)}: two medians, the quotient of the two configurations' "
            "medians over all batches, its interval a bootstrap over (replica slots,) rounds "
            "then batches."
        )
    if parts:
        ratios = "Ratios between configurations: " + " ".join(parts)
    if not any(e.get("live_scaling") for e in data["configs"]):
        return _with_reference(data, ratios)
    if data["settings"].get("live_in_same_rounds") and data["settings"].get("live_scaling_by_part"):
        scaling = (
            "Live scaling, per round by part: (start at the highest live count ÷ at the "
            "lowest) ÷ native's, each part's quotient taken round by round from two slices "
            f"measured back to back and its {TRIM:.0%} trimmed mean (log scale); the figure "
            "is the quotient of the two, its interval a bootstrap over the rounds."
        )
        again = data["settings"].get("native_again")
        if again:
            lives = " and ".join(f"{n:,}" for n in again)
            scaling += f" Native is measured twice a round at {lives} live."
    elif data["settings"].get("live_in_same_rounds"):
        scaling = (
            "Live scaling, per round: each round's (start at the highest live count ÷ at the "
            "lowest) ÷ native's, from four slices measured close together; the figure is the "
            f"rounds' {TRIM:.0%} trimmed mean, its interval a bootstrap over the rounds."
        )
    else:
        scaling = (
            "Live scaling, four medians: (median start at the highest live count ÷ at the "
            "lowest) ÷ native's; the live counts were measured apart (results format before 6)."
        )
    note = scaling if ratios is None else f"{ratios} {scaling}"
    return _with_reference(data, note)


def processes_note(data: RunData) -> str | None:
    """How several measuring processes per configuration enter the intervals (format 10
    with more than one)."""
    k = processes_of(data)
    if k < 2:
        return None
    rule = data["settings"].get("replica_of_round") or REPLICA_OF_ROUND
    return (
        f"Processes: each configuration at each live count was measured in {k} processes, "
        f"taking turns round by round ({rule}); "
        f"every bootstrap draws the {k} replica slots with "
        "replacement first, then rounds within each drawn slot (then batches), so each "
        "interval holds the spread between processes as well as within one."
    )


def reference_note(data: RunData) -> str | None:
    """Whether this run's ratios and live scaling were taken on normalised times."""
    analyse(data)
    ref = data["stability"].get("reference_ns")
    if ref is None:
        return None
    if any(t.get("normalised") for t in data.get("targets", [])) or (
        data["settings"].get("reference_normalised") and not _reference_failed(data)
    ):
        return (
            "Normalised: the ratios between configurations (÷ native, ÷ sgx/pipe) and live "
            "scaling are taken on each batch's time ÷ its reference workload's (timed just "
            "before and after it) × the "
            f"run's median reference ({ref / 1000:.1f} µs), so the machine's speed state, "
            "which the reference sees too, cancels; every µs figure is as measured."
        )
    return (
        "Not normalised: the ratios are taken on times as measured; each batch's reference "
        f"time is in the JSON (run median {ref / 1000:.1f} µs)."
    )


def _reference_failed(data: RunData) -> bool:
    return any(w.startswith("reference: ") for w in data["stability"].get("warnings", []))


def _with_reference(data: RunData, note: str | None) -> str | None:
    ref = reference_note(data)
    if ref is None:
        return note
    return ref if note is None else f"{note} {ref}"


def warnings(data: RunData) -> list[str]:
    return list(analyse(data)["stability"].get("warnings", []))


def markdown(data: RunData) -> str:
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
        md(*compare_rows(data)),
        "",
        "## The seed's table (means per call, cycles at the run's GHz, 95% intervals)",
        "",
        md(*seed_rows(data, cycles=True)),
        "",
        "## Targets",
        "",
        "A verdict is met or missed only when the whole 95% interval is on one side of the "
        "limit; otherwise it is inconclusive.",
        "",
        md(*target_rows(data)),
        "",
    ]
    for note in (method_note(data), processes_note(data)):
        if note:
            parts += [note, ""]
    notes = warnings(data)
    if notes:
        parts += ["## Stability warnings", "", *(f"* {w}" for w in notes), ""]
    return "\n".join(parts)
