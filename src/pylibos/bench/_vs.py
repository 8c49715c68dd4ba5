"""Two saved runs side by side (``pylibos report A.json --vs B.json``)."""

from __future__ import annotations

from ._schema import RunData
from ._stats import changes
from ._text import describe, md, us, with_interval, x3


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


def vs_markdown(a: RunData, b: RunData, names: tuple[str, str], notes: list[str]) -> str:
    header, rows, summary = vs_rows(a, b)
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
    ]
    if notes:
        parts += ["## Differences between the runs", "", *(f"* {n}" for n in notes), ""]
    return "\n".join(parts)
