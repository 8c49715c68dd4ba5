"""The benchmark: configuration names, settings, a real short run, JSON and rendering."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from libos_support import wait_until
from pylibos import _schema, pal
from pylibos._schema import Entry, PhaseSummary
from pylibos.bench import (
    FORMAT_VERSION,
    ResultsError,
    RunData,
    Settings,
    load,
    markdown,
    parse_config,
    parse_config_list,
    plot,
    run,
    save,
    targets,
    valid_names,
)
from pylibos.bench._measure import Run
from pylibos.bench._render import compare_rows, seed_rows

from .conftest import SHORT


def test_config_names_parse() -> None:
    c = parse_config("sgx/raw+pool")
    assert (c.pal, c.events, c.pool) == ("sgx", "raw", True)
    assert parse_config("native").native
    assert "direct/eventfd+pool" in valid_names()


@pytest.mark.parametrize("bad", ["sgx", "sgx/tls", "vm/raw", "sgx/raw+pooled", "", "native+pool"])
def test_unknown_config_lists_the_valid_ones(bad: str) -> None:
    with pytest.raises(ValueError, match="valid: native, direct/pipe"):
        parse_config(bad)


def test_config_list_rejects_duplicates_and_empty() -> None:
    with pytest.raises(ValueError, match="named twice"):
        parse_config_list("native,native")
    with pytest.raises(ValueError, match="no configuration"):
        parse_config_list(" , ")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(duration=0), "--duration"),
        (Settings(duration=-1), "--duration"),
        (Settings(duration=float("nan")), "--duration"),
        (Settings(duration=1e6), "--duration"),
        (Settings(batch=0), "--batch"),
        (Settings(batch=100_001), "--batch"),
        (Settings(rounds=0), "--rounds"),
        (Settings(live=(-1,)), "--live"),
        (Settings(ocall_cycles=-5), "--ocall-cycles"),
        (Settings(ghz=0.0), "--ghz"),
    ],
)
def test_settings_out_of_bounds_are_refused(settings: Settings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run([parse_config("native")], settings)


def _ns(entry: Entry, phase: str) -> PhaseSummary:
    """The phase's figures, which this test expects the run to have."""
    stats = entry["phases_ns"][phase]
    assert stats is not None, phase
    return stats


def test_a_saved_run_holds_the_schemas_keys(short_run: RunData, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    save(short_run, str(path))
    written = json.loads(path.read_text())

    def holds(schema: type, value: dict[str, object]) -> None:
        required, allowed = _schema.keys(schema)
        assert required <= value.keys() <= allowed, (schema.__name__, sorted(value))

    holds(_schema.RunData, written)
    holds(_schema.Machine, written["machine"])
    holds(_schema.SettingsJSON, written["settings"])
    holds(_schema.Stability, written["stability"])
    for entry in written["configs"]:
        holds(_schema.Entry, entry)
        for figures in entry["phases_ns"].values():
            if figures is not None:
                holds(_schema.PhaseSummary, figures)
    assert written["version"] == _schema.FORMAT_VERSION


def test_run_has_every_configuration_and_field(short_run: RunData) -> None:
    assert short_run["version"] == FORMAT_VERSION
    assert set(short_run["machine"]) >= {"cpu", "cores", "python", "pylibos"}
    names = [e["name"] for e in short_run["configs"]]
    assert names == ["native", "sgx/pipe", "sgx/raw", "sgx/eventfd", "sgx/raw+pool"]
    for e in short_run["configs"]:
        assert e["batches"] >= 2  # at least one per round
        assert e["threads"] == e["batches"] * SHORT.batch
        assert _ns(e, "start")["median"] > 0
        projected = e["projected_cycles_per_clone"]
        assert projected is not None and projected > 0
        if e["name"] != "native":
            clone, start = _ns(e, "clone")["median"], _ns(e, "start")["median"]
            assert clone > 0
            if short_run["settings"].get("profile_every", 1) == 1:
                assert clone <= start  # every clone timed: each inside its own start
            elif _sampled_median_bounded_by_p95(e["threads"], short_run["settings"]):
                assert clone <= _ns(e, "start")["p95"], (e["name"], clone, start)
        else:
            assert e["phases_ns"]["clone"] is None


def _sampled_median_bounded_by_p95(threads: int, settings: _schema.SettingsJSON) -> bool:
    """Whether the clones' median is at most the starts' p95 whichever clones were sampled.

    The LibOS clone runs inside the application's Thread.start(), thread by thread, so
    each sampled clone takes less than its own start, and the median of the m sampled
    clones is at most the median of their m starts, which is at most the r-th smallest of
    all n starts, r = n - m + (the median's rank among m).  The profile samples one clone
    in ``every`` in step (any ``every`` in a row hold one), so m >= n // every; the
    inclusive p95 is at least the (floor(0.95 (n - 1)) + 1)-th smallest.  False only for
    the fewest starts (20 or 30 in batches of 10, one in 7)."""
    every = settings.get("profile_every", 1)
    m = threads // every
    if m == 0:
        return False
    rank = m // 2 + 1 if m % 2 == 0 else (m + 1) // 2
    return threads - m + rank <= math.floor(0.95 * (threads - 1)) + 1


def test_phases_present_only_where_they_happen(short_run: RunData) -> None:
    by = {e["name"]: e for e in short_run["configs"]}
    assert by["native"]["phases_ns"]["get_new_thread"] is None
    assert by["sgx/raw"]["phases_ns"]["handshake"] is None
    pipe = by["sgx/pipe"]
    assert _ns(pipe, "handshake")["mean"] > 0
    # Phases nest: each is part of the one around it.
    nested = ["handshake", "create_pollable_event", "get_new_thread", "clone"]
    means = [_ns(pipe, p)["mean"] for p in nested]
    assert means == sorted(means)
    p = pipe["proportions"]
    p1, p2, p3 = p["p1"], p["p2"], p["p3"]
    assert p1 is not None and p2 is not None and p3 is not None
    assert 0 < p3 <= p2 <= p1 <= 1


def test_host_calls_per_clone_are_exact_for_the_cheap_kinds(short_run: RunData) -> None:
    by = {e["name"]: e for e in short_run["configs"]}
    # eventfd: eventfd + clone_thread at creation, close at exit.
    assert by["sgx/eventfd"]["host_calls_per_clone"] == 3.0
    assert by["sgx/eventfd"]["host_calls_by_kind_per_clone"] == {
        "clone_thread": 1.0,
        "close": 1.0,
        "eventfd": 1.0,
    }
    # A pooled event is reused and never set: only the thread itself crosses.
    assert by["sgx/raw+pool"]["host_calls_per_clone"] == 1.0
    # The TLS pipe pays for its handshake in sends and receives.
    assert by["sgx/pipe"]["host_calls_by_kind_per_clone"]["send"] >= 3


def test_targets_cover_the_issue_list(short_run: RunData) -> None:
    whats = [t.what for t in targets(short_run)]
    assert "clone: sgx/raw ÷ sgx/pipe" in whats
    assert "host calls per clone: sgx/eventfd" in whats
    assert "sgx/pipe p3" in whats
    # Host-call targets are exact counts, so they hold on any machine.
    by = {t.what: t for t in targets(short_run)}
    assert by["host calls per clone: sgx/eventfd"].met
    assert by["host calls per clone: sgx/raw+pool"].met


def test_json_round_trip_and_rendering(short_run: RunData, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    save(short_run, str(path))
    again = load(str(path))
    assert again == json.loads(json.dumps(short_run))
    header, rows = compare_rows(again)
    assert len(rows) == 5 and len(header) == len(rows[0])
    header, rows = seed_rows(again, cycles=True)
    assert rows[1][2] != "-"  # sgx/pipe has handshake ops
    text = markdown(again)
    assert "| sgx/raw+pool |" in text and "## Targets" in text
    png = tmp_path / "run.png"
    plot(again, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


_V = FORMAT_VERSION
_GOOD_HEAD = (
    f'"version": {_V}, "machine": {{"cpu": "x", "cores": 2, "python": "3", "pylibos": "0"}}, '
    '"settings": {"duration_s": 1, "batch": 1, "rounds": 1, "ocall_cycles": 1, "ghz": 1}'
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "no 'version'"),
        ('{"version": 99}', "version 99"),
        ('{"version": 1, "configs": []}', "version 1 holds no per-batch samples.*re-run"),
        (f'{{"version": {_V}, "machine": {{}}, "settings": {{}}}}', "missing 'configs'"),
        (
            f'{{"version": {_V}, "machine": {{}}, "settings": {{}}, "configs": []}}',
            "machine lacks cpu",
        ),
        ("{" + _GOOD_HEAD + ', "configs": []}', "holds no results"),
        ("{" + _GOOD_HEAD + ', "configs": [{"name": "x"}]}', r"configs\[0\] lacks"),
    ],
)
def test_bad_results_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    """Each problem is named; none reaches the renderer as a KeyError."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message):
        load(str(path))
    with pytest.raises(ResultsError, match="no such file"):
        load(str(tmp_path / "missing.json"))


def test_damaged_entries_in_a_real_run_are_named(short_run: RunData, tmp_path: Path) -> None:
    path = tmp_path / "damaged.json"
    damages: list[tuple[Callable[[dict[str, Any]], object], str]] = [
        (lambda d: d["settings"].pop("ghz"), "settings lacks ghz"),
        (lambda d: d["configs"][1].update(phases_ns=None), "phases_ns is not an object"),
        (lambda d: d["configs"][1]["phases_ns"]["clone"].update(median="fast"), "'fast'"),
    ]
    for damage, message in damages:
        data = json.loads(json.dumps(short_run))
        damage(data)
        path.write_text(json.dumps(data))
        with pytest.raises(ResultsError, match=message):
            load(str(path))
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(ResultsError, match="not UTF-8"):
        load(str(path))


@pytest.mark.parametrize("backend", pal.available_tls_backends())
def test_run_records_the_tls_backend_it_measured(backend: str) -> None:
    configs = [parse_config(n) for n in ("native", "direct/pipe", "sgx/pipe")]
    data = run(configs, Settings(duration=0.1, batch=5, rounds=1, tls=backend)).as_json()
    assert data["settings"]["tls"] == backend
    by = {e["name"]: e for e in data["configs"]}
    assert by["sgx/pipe"]["tls"] == backend
    assert by["native"]["tls"] is None and by["direct/pipe"]["tls"] is None
    # Either library's handshake is real traffic the host carries and counts.
    calls = by["sgx/pipe"]["host_calls_by_kind_per_clone"]
    assert calls["send"] >= 2 and calls["recv"] >= 2


def test_default_tls_backend_is_recorded_and_none_without_sgx() -> None:
    assert Settings().as_json([parse_config("sgx/raw")], 2.0)["tls"] == pal.default_tls_backend()
    assert Settings().as_json([parse_config("direct/pipe")], 2.0)["tls"] is None


def _children() -> dict[int, tuple[int, set[int]]]:
    """This process's child processes: pid -> (threads, the CPUs it may run on)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != os.getpid():
                continue
            with open(f"/proc/{name}/status") as f:
                threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
            out[int(name)] = (threads, os.sched_getaffinity(int(name)))
        except (OSError, StopIteration, ProcessLookupError):
            continue  # ended meanwhile
    return out


def test_each_configuration_is_measured_in_a_process_of_its_own_on_one_cpu() -> None:
    """Each configuration at each live count holds its live threads in a process of its
    own (so another's 1,000 live threads never slow its starts), every such process is
    confined to the one CPU the run records, and none outlives the run."""
    seen: list[dict[int, tuple[int, set[int]]]] = []

    def on_slice(_name: str) -> None:
        seen.append(_children())

    outcome = run(
        parse_config_list("native,sgx/eventfd"),
        Settings(duration=0.1, batch=5, rounds=1, live=(1, 20)),
        on_slice=on_slice,
    )
    cpu = outcome.as_json()["settings"].get("cpu")
    assert cpu is not None and cpu in os.sched_getaffinity(0)
    assert len(seen) == 6  # four slices and native's second pair (1 and 20 live)
    for children in seen:
        assert len(children) == 4  # one per configuration and live count, all alive
        threads = sorted(t for t, _ in children.values())
        assert threads[0] >= 1 + 1 and threads[2] >= 20 + 1  # its live threads, its main
        assert all(cpus == {cpu} for _, cpus in children.values())
    assert sorted((e["name"], e["live"]) for e in outcome.results) == [
        ("native", 1), ("native", 20), ("sgx/eventfd", 1), ("sgx/eventfd", 20),
    ]  # fmt: skip
    assert all(e["rss_per_live_thread_kib"] is not None for e in outcome.results)
    assert _children() == {}


def test_a_configurations_live_counts_are_measured_back_to_back_in_every_round() -> None:
    """Every live count in the same rounds: in each round native again at the lowest and
    highest live counts, then a configuration's live counts one after the other, lowest
    first, and odd rounds the whole order backwards, as each slice's start (``at_s``)
    shows; the run says so (and which ratios it takes round by round, the order it
    measured in, where native is measured twice, how live scaling is taken), and its
    results come live count by live count."""
    outcome = run(
        parse_config_list("native,sgx/raw"),
        Settings(duration=0.06, batch=3, rounds=3, live=(1, 5, 9)),
    )
    data = outcome.as_json()
    assert data["version"] == FORMAT_VERSION >= 6
    assert data["settings"].get("live_in_same_rounds") is True
    assert data["settings"].get("ratios_in_rounds") == [
        "clone ÷ sgx/pipe", "create_pollable_event ÷ sgx/pipe",
    ]  # fmt: skip
    assert data["settings"].get("measuring_order") == ["native", "sgx/raw"]
    assert data["settings"].get("native_again") == [1, 9]
    assert data["settings"].get("live_scaling_by_part") is True
    assert [(e["live"], e["name"]) for e in data["configs"]] == [
        (live, name) for live in (1, 5, 9) for name in ("native", "sgx/raw")
    ]
    required, allowed = _schema.keys(_schema.SliceJSON)
    for e in data["configs"]:
        assert all(required <= s.keys() <= allowed and "at_s" in s for s in e["slices"])
    measured = sorted(
        (s["at_s"], s["round"], e["name"], e["live"])
        for e in data["configs"]
        for s in e.get("slices", [])
        if s["kept"]
    )
    assert measured[0][0] >= 0
    even = [("native", 1), ("native", 9)]
    even += [(name, live) for name in ("native", "sgx/raw") for live in (1, 5, 9)]
    expected = [(r, *s) for r in range(3) for s in (even if r % 2 == 0 else even[::-1])]
    assert [m[1:] for m in measured] == expected
    for e in data["configs"]:
        assert sorted(set(e["batch_rounds"])) == [0, 1, 2]


def test_schedule_keeps_a_configurations_live_counts_together() -> None:
    """A configuration's live counts back to back; odd rounds run the whole round
    backwards, so two configurations' slices swap places from one round to the next."""
    from pylibos.bench._measure import schedule

    groups = [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    assert schedule(groups, 0) == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert schedule(groups, 1) == ["b3", "b2", "b1", "a3", "a2", "a1"]
    assert schedule(groups, 2) == schedule(groups, 0)
    # Native again at the lowest and highest live counts: first in even rounds, last in
    # odd ones, half a round from its other pair.
    again = ["a1", "a3"]
    assert schedule(groups, 0, again) == ["a1", "a3", "a1", "a2", "a3", "b1", "b2", "b3"]
    assert schedule(groups, 1, again) == ["b3", "b2", "b1", "a3", "a2", "a1", "a3", "a1"]


def test_native_is_measured_again_only_where_live_scaling_divides_by_it() -> None:
    """Native's second pair of slices a round: at the lowest and highest live counts, when
    the run has two live counts or more, native and another configuration."""
    both = parse_config_list("native,sgx/raw")
    assert Settings(live=(1, 100, 1000)).native_again(both) == (1, 1000)
    assert Settings(live=(1000, 1)).native_again(both) == (1, 1000)
    assert Settings(live=(1,)).native_again(both) == ()
    assert Settings(live=(1, 1000)).native_again(parse_config_list("sgx/raw,sgx/pipe")) == ()
    assert Settings(live=(1, 1000)).native_again(parse_config_list("native")) == ()


def test_native_is_measured_between_the_configurations_its_start_targets_divide() -> None:
    from pylibos.bench._configs import DEFAULT_COMPARE, measuring_order

    default = parse_config_list(",".join(DEFAULT_COMPARE))
    assert [c.name for c in measuring_order(default)] == [
        "direct/pipe", "sgx/pipe", "sgx/raw", "sgx/eventfd", "native", "sgx/raw+pool",
    ]  # fmt: skip
    one = parse_config_list("native,sgx/raw,sgx/raw+pool")
    assert [c.name for c in measuring_order(one)] == ["sgx/raw", "sgx/raw+pool", "native"]
    plain = parse_config_list("sgx/pipe,native,sgx/raw")
    assert measuring_order(plain) == plain  # no start target: the order given


def test_all_cpus_leaves_the_placement_to_the_kernel() -> None:
    seen: list[dict[int, tuple[int, set[int]]]] = []
    outcome = run(
        parse_config_list("native"),
        Settings(duration=0.05, batch=5, rounds=1, pin=False),
        on_slice=lambda _name: seen.append(_children()),
    )
    assert outcome.as_json()["settings"].get("cpu") is None
    assert [cpus for children in seen for _, cpus in children.values()] == [os.sched_getaffinity(0)]


@pytest.mark.parametrize("where", ["after a slice", "deciding on another round"])
def test_interrupt_keeps_what_was_measured(where: str) -> None:
    """Ctrl-C after the second slice keeps the two configurations measured (sgx/raw and
    sgx/eventfd: native is measured after the configuration its start target divides;
    native had no slice and is left out); Ctrl-C while ``more`` decides keeps every configuration,
    each with one round per batch recorded."""
    slices = 0

    def on_slice(_name: str) -> None:
        nonlocal slices
        slices += 1
        if where == "after a slice" and slices == 2:
            raise KeyboardInterrupt

    def more(_partial: Run, _elapsed: float) -> bool:
        raise KeyboardInterrupt

    outcome = run(
        parse_config_list("native,sgx/raw,sgx/eventfd"),
        Settings(duration=0.06, batch=3, rounds=3 if where == "after a slice" else 1),
        on_slice=on_slice,
        more=more,
    )
    assert outcome.interrupted and outcome.as_json()["interrupted"] is True
    names = [e["name"] for e in outcome.results]
    if where == "after a slice":
        assert names == ["sgx/raw", "sgx/eventfd"]
    else:
        assert names == ["native", "sgx/raw", "sgx/eventfd"]
    assert all(len(e["batch_rounds"]) == e["batches"] for e in outcome.results)
    assert _children() == {}


def test_phases_missing_from_some_clones_count_as_zero_per_clone() -> None:
    """A pooled clone makes no handshake: the profile counts it 0, so its statistics are
    per clone (count, mean, median) and the seed's proportions are ratios of those means."""
    from pylibos.libos import Profile, proportions, summary

    class Calls:
        def thread_calls(self) -> int:
            return 0

    # 10 clones, 2 of which made a fresh TLS event (a pool serves the rest).
    profile = Profile(Calls())  # type: ignore[arg-type]
    for i in range(10):
        with profile.phase("clone"), profile.phase("create_pollable_event"):
            if i in (3, 7):
                with profile.phase("handshake"):
                    pass
    per_clone = profile.per_clone_samples("handshake")
    assert len(per_clone) == 10 and per_clone.count(0) == 8
    handshake = summary(per_clone)
    assert handshake is not None and handshake["median"] == 0.0
    assert profile.per_clone_samples("get_new_thread") == []
    stats = profile.statistics()
    shake, clone = stats.phases["handshake"], stats.phases["clone"]
    assert shake.count == clone.count == 10
    assert shake.mean_ns == shake.sum_ns / 10 and shake.median_ns == 0.0
    assert handshake["mean"] == shake.mean_ns  # the benchmark's figure is the profile's
    p3 = stats.proportions()["p3"]
    assert p3 is not None and p3 == pytest.approx(shake.mean_ns / clone.mean_ns)
    assert proportions({"handshake": 1.0, "clone": 4.0})["p3"] == 0.25
    assert proportions({"clone": 4.0})["p3"] is None  # a phase that never ran


def test_steal_is_the_hypervisors_share_of_cpu_time() -> None:
    from pylibos.bench._machine import steal_share

    # user nice system idle iowait irq softirq steal
    before = [100, 0, 50, 800, 0, 0, 0, 50]
    after = [200, 0, 100, 1550, 0, 0, 0, 150]
    assert steal_share(before, after) == pytest.approx(100 / 1000)
    assert steal_share(None, after) is None
    assert steal_share(before[:4], after[:4]) is None  # no steal field


def test_p95_never_exceeds_the_largest_sample() -> None:
    from pylibos.libos import summary

    stats = summary([100, 200])
    assert stats is not None and stats["p95"] <= 200


def test_the_workers_calls_are_counted_apart() -> None:
    """The LibOS's workers poll now and then on their own; the benchmark takes their calls
    out of the measured threads' (``worker_host_calls``)."""
    from pylibos.libos import LibOS
    from pylibos.pal import open_host

    host = open_host("direct")
    libos = LibOS(host, "eventfd")
    try:
        # Each worker's first poll follows its start; nothing signals it.
        assert wait_until(lambda: libos.worker_host_calls() >= 2)  # one poll each, at least
        mine = host.thread_calls()
        assert host.calls_total >= mine + libos.worker_host_calls()
    finally:
        libos.shutdown()
        host.shutdown()


def test_no_targets_for_a_run_interrupted_before_any_batch() -> None:
    """A compare interrupted before its first batch reaches the analysis with no
    configuration measured: no target to check (it raised IndexError, and the CLI showed a
    traceback instead of its ERROR line)."""
    from pylibos.bench._render import targets

    assert targets(cast(RunData, {"configs": []})) == []


def test_a_measuring_process_that_dies_is_named_and_none_is_left() -> None:
    """A measuring process killed mid-run (out of memory, say) ends the run with an error
    naming its configuration; the other process is ended too."""
    import signal

    def on_slice(name: str) -> None:
        if name == "native":
            for pid in _children():
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(RuntimeError, match="the measuring process ended"):
        run(
            parse_config_list("native,sgx/eventfd"),
            Settings(duration=0.04, batch=3, rounds=2),
            on_slice=on_slice,
        )
    assert _children() == {}


def test_ctrl_c_while_a_measuring_process_answers_loses_nothing() -> None:
    """A real SIGINT sent as the second slice starts lands wherever the parent is (sending
    the request, waiting on the pipe, reading the answer): the run keeps what was measured,
    every batch with its round, and no measuring process outlives it."""
    import signal

    sent = threading.Event()

    def on_slice(_name: str) -> None:
        if not sent.is_set():
            sent.set()
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()

    outcome = run(
        parse_config_list("native,sgx/eventfd"),
        Settings(duration=0.3, batch=3, rounds=2),
        on_slice=on_slice,
    )
    assert outcome.interrupted
    # sgx/eventfd is measured first (``measuring_order``: native after it)
    assert [e["name"] for e in outcome.results][-1:] == ["sgx/eventfd"]
    assert all(len(e["batch_rounds"]) == e["batches"] >= 1 for e in outcome.results)
    assert _children() == {}


def test_a_slice_another_process_crowds_is_dropped_and_measured_again() -> None:
    """Another process spinning on the measuring CPU, the measuring process niced below it
    after its first slice: the second slice is dropped and measured again, twice, the
    third is kept and named in a warning; the batches kept are those of kept slices."""
    import subprocess
    import sys

    from pylibos.bench._warnings import stability_warnings

    settings = Settings(duration=0.5, batch=5, rounds=2)
    cpu = settings.cpu()
    assert cpu is not None
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def on_slice(_name: str) -> None:
        for pid in _children():
            if pid != spin.pid:
                os.setpriority(os.PRIO_PROCESS, pid, 15)  # the spinner takes most of the CPU

    try:
        os.sched_setaffinity(spin.pid, {cpu})
        outcome = run(parse_config_list("native"), settings, on_slice=on_slice)
    finally:
        spin.kill()
        spin.wait()
    (entry,) = outcome.results
    assert entry.get("slices_dropped", 0) >= 2 and entry.get("slices_busy_kept", 0) >= 1
    assert sorted(set(entry["batch_rounds"])) == [0, 1]
    assert (
        len(entry["batch_rounds"]) == entry["batches"] and entry["threads"] == entry["batches"] * 5
    )
    warnings = stability_warnings(outcome.as_json())
    assert any("another process took over 10% of the measuring CPU" in w for w in warnings)
    # Every slice measured is recorded with the share others took, dropped ones too.
    slices = entry["slices"]
    assert len(slices) == 2 + entry["slices_dropped"]
    assert [s["round"] for s in slices if s["kept"]] == [0, 1]
    crowded = [s for s in slices if not s["kept"]]
    assert crowded and all(s["others"] is not None and s["others"] > 0.1 for s in crowded)


def test_others_share_of_the_cpu() -> None:
    from pylibos.bench._machine import others_share

    # (busy s, this process's s, wall s): 0.3 s busy in 1 s, 0.1 s of it ours.
    assert others_share((10.0, 2.0, 100.0), (10.3, 2.1, 101.0)) == pytest.approx(0.2)
    assert others_share((10.0, 2.0, 100.0), (10.0, 2.1, 101.0)) == 0.0  # tick rounding
    assert others_share((10.0, 2.0, 100.0), (10.1, 2.0, 100.1)) is None  # too short
    assert others_share(None, (10.0, 2.0, 100.0)) is None  # no CPU watched
