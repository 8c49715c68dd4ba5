"""The reference workload: ratios between configurations and live scaling taken on times
normalised by each slice's reference, on synthetic runs with known answers (machine states
that multiply a slice's times and its reference alike), its fallbacks, the results file,
and a real short run that writes and renders it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from pylibos._cli import main
from pylibos._schema import TIMED, Entry, RunData
from pylibos.bench import FORMAT_VERSION, ResultsError, load, save
from pylibos.bench._reference_workload import reference_ns
from pylibos.bench._render import analyse, markdown, targets
from pylibos.bench._stats import Figures, Interval
from pylibos.bench._vs import compare_runs

ROUNDS = 22
PER_SLICE = 8


def _entry(
    name: str, live: int, starts: list[float], refs: list[float] | None, rounds: list[int]
) -> Entry:
    batches: dict[str, Any] = {p: None for p in TIMED}
    batches["start"] = {"median": starts, "mean": starts}
    one = {"mean": 1.0, "median": 1.0, "p95": 1.0}
    phases = {p: None if batches[p] is None else one for p in TIMED}
    out: dict[str, Any] = {
        "name": name, "pal": None, "events": None, "pool": False, "tls": None, "live": live,
        "batches": len(starts), "threads": len(starts), "phases_ns": phases,
        "batches_ns": batches, "batch_rounds": rounds,
        "proportions": {"p1": None, "p2": None, "p3": None}, "host_calls_per_clone": 0.0,
        "projected_cycles_per_clone": 0.0, "rss_per_live_thread_kib": None,
    }  # fmt: skip
    if refs is not None:
        out["batch_reference_ns"] = refs
        # One slice a round: its reference before and after (both the slice's here).
        by_round = dict(zip(rounds, refs, strict=True))
        out["slices"] = [
            {"round": r, "others": 0.0, "kept": True, "reference_ns": [v, v]}
            for r, v in sorted(by_round.items())
        ]
    return cast(Entry, out)


def _run(*entries: Entry, normalised: bool = True) -> RunData:
    lives = sorted({e["live"] for e in entries})
    return cast(RunData, {
        "version": FORMAT_VERSION,
        "machine": {"cpu": "test", "cores": 2, "python": "3.11", "pylibos": "0"},
        "settings": {
            "configs": sorted({e["name"] for e in entries}), "duration_s": 4.4, "batch": 100,
            "rounds": ROUNDS, "live": lives, "ocall_cycles": 10_000, "ghz": 2.0,
            "tls": None, "cpu": 1, "live_in_same_rounds": True, "ratios_in_rounds": [],
            "native_again": [], "live_scaling_by_part": True,
            "reference_normalised": normalised,
        },
        "interrupted": False,
        "stability": {"load_before": [0.1, 0.1, 0.1], "load_after": [0.1, 0.1, 0.1],
                      "cpu_count": 2, "governor": None},
        "configs": list(entries),
    })  # fmt: skip


def _slices(
    rng: np.random.Generator, true_ns: float, *, slow: float, p_slow: float, moves: bool = True
) -> tuple[list[float], list[float], list[int]]:
    """``ROUNDS`` slices of ``PER_SLICE`` batches each: every slice in the fast state or,
    with chance ``p_slow``, the slow one, which multiplies its batches' times and (if
    ``moves``) its reference alike; 4% batch noise, 1% reference noise."""
    starts: list[float] = []
    refs: list[float] = []
    rounds: list[int] = []
    for r in range(ROUNDS):
        state = slow if rng.random() < p_slow else 1.0
        ref = 150_000.0 * (state if moves else 1.0) * rng.normal(1, 0.01)
        starts += list(true_ns * state * rng.normal(1, 0.04, PER_SLICE))
        refs += [ref] * PER_SLICE
        rounds += [r] * PER_SLICE
    return starts, refs, rounds


def _start_ratio(data: RunData) -> Interval:
    found = [t for t in targets(data, Figures(data, resamples=1000)) if t.what.startswith("start:")]
    assert len(found) == 1 and found[0].value is not None
    return found[0].value


def _pair(seed: int, *, moves: bool = True, normalised: bool = True) -> RunData:
    rng = np.random.default_rng(seed)
    native = _entry("native", 1, *_slices(rng, 45_000, slow=1.3, p_slow=0.4, moves=moves))
    pool = _entry("sgx/raw+pool", 1, *_slices(rng, 54_000, slow=1.3, p_slow=0.4, moves=moves))
    return _run(native, pool, normalised=normalised)


def test_normalised_ratio_recovers_the_true_ratio_across_machine_states() -> None:
    """Each slice of native (45 µs) and sgx/raw+pool (54 µs: true ratio 1.2) lands in a fast
    or a 1.3x slow state at random, which multiplies its reference too.  Over 20 seeded
    runs the normalised ratio's interval holds 1.2 in nearly all and is narrow; the raw
    one's is several times wider and its value strays."""
    hits, widths, raw_widths, raw_errors, errors = 0, [], [], [], []
    for seed in range(20):
        norm = _start_ratio(_pair(seed))
        raw = _start_ratio(_pair(seed, normalised=False))
        assert norm.width is not None and raw.width is not None
        hits += norm.holds(1.2)
        widths.append(norm.width)
        raw_widths.append(raw.width)
        errors.append(abs(np.log(norm.value / 1.2)))
        raw_errors.append(abs(np.log(raw.value / 1.2)))
    assert hits >= 18, hits
    assert float(np.median(widths)) < 0.05, widths
    assert float(np.median(raw_widths)) > 3 * float(np.median(widths)), (raw_widths, widths)
    assert float(np.mean(errors)) < 0.5 * float(np.mean(raw_errors))


def test_normalised_live_scaling_recovers_the_truth_across_machine_states() -> None:
    """Live scaling (sgx/raw+pool's 1,000 ÷ 1 live over native's; true 1.0) with every
    slice in a fast or a 1.3x slow state: normalised, the interval holds 1.0 and is narrow
    (0.033 of the value at the median of 40 seeds, against 0.245 raw)."""
    hits, widths, raw_widths = 0, list[float](), list[float]()
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        made = [
            _entry(name, live, *_slices(rng, ns, slow=1.3, p_slow=0.4))
            for name, live, ns in (
                ("native", 1, 45_000), ("native", 1000, 60_000),
                ("sgx/raw+pool", 1, 54_000), ("sgx/raw+pool", 1000, 72_000),
            )
        ]  # fmt: skip
        for normalised, into in ((True, widths), (False, raw_widths)):
            data = _run(*made, normalised=normalised)
            scaling = [t for t in targets(data) if t.what.startswith("start at")]
            assert len(scaling) == 1 and scaling[0].value is not None
            assert scaling[0].normalised is normalised
            assert scaling[0].value.width is not None
            into.append(scaling[0].value.width)
            if normalised:
                hits += scaling[0].value.holds(1.0)
    assert hits >= 10, hits  # 37 of 40 over seeds 100 to 139
    assert float(np.median(raw_widths)) > 3 * float(np.median(widths)), (raw_widths, widths)


def test_a_reference_that_does_not_move_changes_nothing() -> None:
    """With every slice's reference the same, normalising multiplies every time by 1: the
    ratio, its interval and the verdict are those taken on times as measured."""
    for seed in range(3):
        norm = analyse(_pair(seed, moves=False))
        raw = analyse(_pair(seed, moves=False, normalised=False))
        # Not exactly the same: each slice's reference has 1% noise (below, none).
        assert norm["targets"][0]["normalised"] is True and "normalised" not in raw["targets"][0]
        a, b = norm["targets"][0]["value"], raw["targets"][0]["value"]
        assert a is not None and b is not None
        assert a["value"] == pytest.approx(b["value"], rel=0.02), (a, b)
    data = _pair(0, moves=False)
    for e in data["configs"]:
        e["batch_reference_ns"] = [150_000.0] * len(e["batch_rounds"])
        for one in e.get("slices", []):
            one["reference_ns"] = [150_000.0, 150_000.0]
    flat = analyse(data)["targets"][0]
    same = analyse(_pair(0, moves=False, normalised=False))["targets"][0]
    assert flat["value"] == same["value"] and flat["verdict"] == same["verdict"]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda e: e.pop("batch_reference_ns"), "native at 1 live has no reference times"),
        (lambda e: e["batch_reference_ns"].__setitem__(3, 0.0), "reference time of 0.0 ns"),
        (lambda e: e["batch_reference_ns"].__setitem__(0, -5.0), "reference time of -5.0 ns"),
    ],
    ids=["missing", "zero", "negative"],
)
def test_a_missing_zero_or_negative_reference_falls_back_to_raw_and_says_so(
    damage: Any, said: str
) -> None:
    data = _pair(1)
    damage(data["configs"][0])
    analyse(data)
    warned = [w for w in data["stability"]["warnings"] if w.startswith("reference: ")]
    assert len(warned) == 1 and said in warned[0] and "as measured" in warned[0], warned
    assert not any(t.get("normalised") for t in data["targets"])
    raw = analyse(_pair(1, normalised=False))
    assert data["targets"][0]["value"] == raw["targets"][0]["value"]
    assert "Not normalised" in markdown(data)


def test_a_run_that_turned_the_reference_off_is_not_normalised_and_says_so() -> None:
    data = analyse(_pair(2, normalised=False))
    assert not any(t.get("normalised") for t in data["targets"])
    assert not any(w.startswith("reference: ") for w in data["stability"]["warnings"])
    text = markdown(data)
    assert "Not normalised" in text and "Normalised:" not in text
    assert data["stability"]["reference_ns"] == pytest.approx(150_000 * 1.15, rel=0.15)


def test_the_run_median_reference_keeps_normalised_times_in_ns() -> None:
    """Normalised times are time ÷ the slice's reference × the run's median reference: a
    slice at the median state keeps its times."""
    from pylibos.bench._reference import reference_view

    data = _pair(3)
    view = reference_view(data)
    assert view.data is not None and view.reference_ns is not None and view.why is None
    e, n = data["configs"][0], view.data["configs"][0]
    before, after = e["batches_ns"]["start"], n["batches_ns"]["start"]
    assert before is not None and after is not None and before is not after
    for v, r, w in zip(before["median"], e["batch_reference_ns"], after["median"], strict=True):
        assert w == pytest.approx(v / r * view.reference_ns)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda e: e.__setitem__("batch_reference_ns", [1.0]), "batch_reference_ns is not a list"),
        (lambda e: e["batch_reference_ns"].__setitem__(0, "fast"), "holds 'fast'"),
        (lambda e: e["slices"][0].__setitem__("reference_ns", [1.0]), "is not two times"),
    ],
    ids=["length", "not-a-number", "slice"],
)
def test_a_damaged_reference_in_a_file_is_named(tmp_path: Path, damage: Any, said: str) -> None:
    data = _pair(4)
    damage(data["configs"][0])
    path = tmp_path / "run.json"
    save(data, str(path))
    with pytest.raises(ResultsError, match=said):
        load(str(path))


def test_report_vs_gives_the_references_drift_beside_natives() -> None:
    """B's machine 1.25x slower: every time and every reference alike.  The references'
    B ÷ A says 1.25, as native's does."""
    a = _pair(5)
    b = _pair(5)
    for e in b["configs"]:
        per = e["batches_ns"]["start"]
        assert per is not None
        per["median"] = [v * 1.25 for v in per["median"]]
        per["mean"] = [v * 1.25 for v in per["mean"]]
        e["batch_reference_ns"] = [v * 1.25 for v in e["batch_reference_ns"]]
        for s in e.get("slices", []):
            s["reference_ns"] = [v * 1.25 for v in s["reference_ns"]]
    comparison = compare_runs(analyse(a), analyse(b), resamples=500)
    ref = comparison.reference
    assert ref is not None and ref.value == pytest.approx(1.25, rel=1e-6)
    assert ref.low is not None and ref.high is not None and ref.low < 1.25 < ref.high * 1.0001
    assert "reference workload" in comparison.summary()


def test_reference_workload_takes_about_a_millisecond_or_less() -> None:
    """Timed before and after every slice of 0.2 s: it must stay small beside the slice."""
    times = [reference_ns() for _ in range(5)]
    assert all(t > 0 for t in times)
    assert float(np.median(times)) < 5e6  # ns; about 0.8 ms on the machine it was written on


def test_a_real_short_run_writes_and_renders_the_reference(tmp_path: Path) -> None:
    """``compare`` measures the reference around every slice, normalises the ratios by it
    and says so; ``--no-reference`` keeps the references but not the normalising, and
    ``report --no-reference`` takes a saved run's ratios as measured."""
    path, off, md = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "a.md"
    base = ["compare", "--configs", "native,sgx/raw+pool", "--duration", "0.1", "--rounds", "2"]
    base += ["--live", "1", "--batch", "5"]
    assert main([*base, "--json", str(path), "--markdown", str(md)]) == 0
    data = json.loads(path.read_text())
    assert data["version"] == FORMAT_VERSION >= 9
    assert data["settings"]["reference_normalised"] is True
    assert data["stability"]["reference_ns"] > 0
    for e in data["configs"]:
        assert len(e["batch_reference_ns"]) == len(e["batch_rounds"]) == e["batches"]
        assert all(v > 0 for v in e["batch_reference_ns"])
        assert all(len(s["reference_ns"]) == 2 and min(s["reference_ns"]) > 0 for s in e["slices"])
    start = next(t for t in data["targets"] if t["what"].startswith("start:"))
    assert start["normalised"] is True
    assert "Normalised:" in md.read_text() and "normalised" in md.read_text()
    assert main([*base, "--no-reference", "--json", str(off)]) == 0
    data_off = json.loads(off.read_text())
    assert data_off["settings"]["reference_normalised"] is False
    assert all(e["batch_reference_ns"] for e in data_off["configs"])
    assert not any(t.get("normalised") for t in data_off["targets"])
    md2 = tmp_path / "again.md"
    assert main(["report", str(path), "--no-reference", "--markdown", str(md2)]) == 0
    assert "Not normalised" in md2.read_text()
    assert main(["report", str(path), "--vs", str(off)]) == 0


def test_each_batch_gets_the_references_around_it_and_a_dropped_slice_loses_them() -> None:
    """In a measuring process: one reference per batch kept, the mean of the references
    just before and after it; a slice dropped (another process crowded the CPU) takes its
    batches' references with it."""
    from pylibos.bench import parse_config
    from pylibos.bench._subjects import make_subject

    subject = make_subject(parse_config("native"), 0, 5)
    subject.setup()
    try:
        subject.run_slice(0.02, 0, None)
        kept = len(subject.batch_rounds)
        assert kept >= 1 and len(subject.batch_reference) == kept
        assert all(v > 0 for v in subject.batch_reference)
        first, last = subject.slices[0]["reference_ns"]
        assert min(first, last) > 0
        mark = subject._mark()
        subject.run_for(0.02, 1)
        assert len(subject.batch_reference) == len(subject.batch_rounds) > kept
        subject._drop_since(mark)
        assert len(subject.batch_reference) == len(subject.batch_rounds) == kept
        entry = subject.result()
        assert entry["batch_reference_ns"] == [round(v, 1) for v in subject.batch_reference]
    finally:
        subject.teardown()


def test_report_vs_of_a_normalised_and_a_raw_run_names_the_method_and_marks_the_targets() -> None:
    from pylibos.bench._vs import differences, vs_target_rows

    a, b = analyse(_pair(6)), analyse(_pair(7, normalised=False))
    notes = differences(a, b)
    assert any("normalised by the reference workload in A and as measured in B" in n for n in notes)
    _, rows, summary = vs_target_rows(a, b)
    start = next(r for r in rows if r[0].startswith("start:"))
    assert start[-1] == "not alike" and start[-2] == "A two medians, normalised, B two medians"
    assert "1 taken differently are not counted" in summary
    _, rows, _ = vs_target_rows(a, analyse(_pair(8)))
    assert next(r for r in rows if r[0].startswith("start:"))[-2] == "two medians, normalised"
