"""The plot of a run: each configuration's thread start by phase, and the projected SGX
cost with its range."""

from __future__ import annotations

from .._schema import Entry, RunData
from ._analyse import analyse
from ._stats import Interval
from ._text import describe, lives, stored


def _mean(entry: Entry, phase: str | None) -> float | None:
    stats = None if phase is None else entry["phases_ns"].get(phase)
    return None if stats is None else float(stats["mean"])


def _projected(entry: Entry) -> list[float]:
    proj = entry.get("projection")
    return [0.0] * 3 if proj is None else proj["cycles"]


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


def plot(data: RunData, path: str) -> None:
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
    labels = [e["name"] + (f" ({e['live']} live)" if len(lives(data)) > 1 else "") for e in entries]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.55 * len(entries) + 2.2), sharey=True)
    ys = list(range(len(entries)))
    left = [0.0] * len(entries)
    colors = ("#c0392b", "#e67e22", "#2980b9", "#7f8c8d", "#bdc3c7")
    for (label, phase, minus), color in zip(_SEGMENTS, colors, strict=True):
        widths = []
        for e in entries:
            total = _mean(e, phase)
            sub = _mean(e, minus) if minus else 0.0
            widths.append(max(0.0, ((total or 0.0) - (sub or 0.0)) / 1000))
        ax1.barh(ys, widths, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax1.errorbar(
        left,
        ys,
        xerr=_errs([stored(e, "start.mean") for e in entries], 1 / 1000),
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
    proj = [_projected(e) for e in entries]
    clone_ivs = [stored(e, "start.median") for e in entries]
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
