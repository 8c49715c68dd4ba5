"""The benchmark's phase profile samples one clone in a few: the interval it picks, the
figures of batches with and without a sampled clone (a real LibOS, tiny batches), and the
interval recorded in the run's settings."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pylibos._cli import main
from pylibos._cli._parser import PROFILE_EVERY as PROFILE_EVERY_OPTION
from pylibos.bench import RunData, Settings, parse_config, parse_config_list, run
from pylibos.bench._subjects import (
    PROFILE_EVERY,
    LibOSSubject,
    make_subject,
    sampling_interval,
)

from .conftest import SHORT

PHASES_EVERY_CLONE_RUNS = ("clone", "get_new_thread", "create_pollable_event")


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=64))
def test_the_interval_is_the_largest_coprime_with_the_batch(batch: int, most: int) -> None:
    n = sampling_interval(batch, most)
    assert 1 <= n <= min(batch, most) and math.gcd(n, batch) == 1
    assert all(math.gcd(m, batch) != 1 for m in range(n + 1, min(batch, most) + 1))
    # Any ``batch`` consecutive clones hold a sampled one (n <= batch), and over n batches
    # the sampled clones take every place in the batch, wherever the count starts.
    if batch <= 200:
        for offset in (0, 1, n - 1):
            places = {
                i for k in range(n) for i in range(batch) if (offset + k * batch + i) % n == 0
            }
            assert places == set(range(batch))


def test_the_default_interval_for_the_default_batch() -> None:
    assert PROFILE_EVERY == 8
    assert sampling_interval(100) == 7  # 100 and 8 share a factor: 14 or 15 a batch
    assert sampling_interval(10) == 7
    assert sampling_interval(3) == 2
    assert sampling_interval(1) == 1


@pytest.mark.parametrize(
    ("every", "error", "message"),
    [
        (0, ValueError, "at least 1"),
        (-3, ValueError, "at least 1"),
        (True, TypeError, "must be an int"),
        (2.0, TypeError, "must be an int"),
        ("8", TypeError, "must be an int"),
    ],
)
def test_a_bad_interval_is_refused(every: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make_subject(parse_config("sgx/raw"), 0, 5, None, every)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        sampling_interval(10, every)  # type: ignore[arg-type]


def test_a_batch_has_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least 1 thread, got 0"):
        sampling_interval(0)


@pytest.fixture
def tiny() -> Iterator[LibOSSubject]:
    """sgx/raw in batches of 2, its profile timing one clone in 5: most batches hold no
    sampled clone."""
    subject = make_subject(parse_config("sgx/raw"), 0, 2, None, 5)
    assert isinstance(subject, LibOSSubject)
    subject.setup()
    try:
        yield subject
    finally:
        subject.teardown()
        gc.collect()


def test_a_batch_without_a_sampled_clone_is_recorded_with_the_next(tiny: LibOSSubject) -> None:
    """Batches are run and recorded one by one: a batch with no sampled clone records
    nothing (no 0 for any phase); the next batch with one records both, its starts with
    theirs, and the phases' figures are that one sampled clone's, which ran inside one of
    the record's starts."""
    assert tiny.libos.profile.every == 5
    records = 0
    runs = 0
    unrecorded = 0
    while records < 6:
        starts_before = len(tiny._ns["start"])
        tiny.run_batch()
        tiny.batches += 1
        runs += 1
        if not tiny._record_batch(round_no=records):
            unrecorded += 1
            assert len(tiny.batch_rounds) == records
            assert all(len(per["median"]) == records for per in tiny.batch_ns.values())
            continue
        records += 1
        starts = tiny._ns["start"][starts_before:]
        # Five clones in a row hold one sampled clone, two hold at most one.
        assert len(starts) in (2, 4, 6)
        for phase in PHASES_EVERY_CLONE_RUNS:
            (one,) = tiny._ns[phase][records - 1 :]
            assert one > 0
            assert tiny.batch_ns[phase]["median"][-1] == tiny.batch_ns[phase]["mean"][-1] == one
        assert tiny._ns["clone"][-1] <= max(starts)
        assert tiny.batch_ns["start"]["median"][-1] > 0
    assert unrecorded >= 3  # 12 to 16 clones held 3 or 4 sampled ones among 6 batches
    assert runs == tiny.batches == records + unrecorded
    assert len(tiny._ns["start"]) == 2 * runs  # every start kept
    assert tiny.batch_rounds == list(range(6))
    assert tiny.batch_ns["handshake"]["median"] == [0.0] * 6  # a raw pipe has no handshake


def test_a_slice_ends_on_a_record_and_every_figure_is_a_sampled_clones(
    tiny: LibOSSubject,
) -> None:
    """``run_for`` of a real LibOS in batches of 2 sampling one clone in 5: the slice goes
    on until its last batch is recorded, so no start is left over for another slice; every
    record has phase figures of sampled clones only, never a 0; the entry's figures are
    over the sampled clones, its ``threads`` over every start."""
    tiny.run_slice(0.02, 0, None)
    tiny.run_slice(0.02, 1, None)
    assert tiny._start_ns == []
    records = len(tiny.batch_rounds)
    assert 2 <= records < tiny.batches
    assert len(tiny.batch_reference) == records
    assert sorted(set(tiny.batch_rounds)) == [0, 1]
    for phase in PHASES_EVERY_CLONE_RUNS:
        assert all(v > 0 for v in tiny.batch_ns[phase]["median"]), phase
        assert len(tiny._ns[phase]) == records  # one sampled clone a record
    entry = tiny.result()
    assert entry["batches"] == tiny.batches and entry["threads"] == 2 * tiny.batches
    assert len(entry["batch_rounds"]) == records
    clone = entry["phases_ns"]["clone"]
    assert clone is not None and clone["median"] > 0
    batches = entry["batches_ns"]["clone"]
    assert batches is not None and len(batches["median"]) == records


def test_a_profile_that_samples_nothing_ends_the_slice_with_an_error(
    tiny: LibOSSubject,
) -> None:
    """Batches without a sampled clone, more than the interval allows in a row: an error
    naming the configuration, not a slice that never ends."""
    tiny.libos.profile.enabled = False  # its sampling yields no sampled clone
    with pytest.raises(RuntimeError, match="sgx/raw: 6 batches in a row without a figure"):
        tiny.run_for(10.0)
    assert tiny.batch_rounds == []


def test_the_run_records_the_interval_and_samples(short_run: RunData) -> None:
    """The short run (batches of 10) samples one clone in 7; its phases' batch figures are
    each a record's sampled clones', never a 0 for a batch without one."""
    every = short_run["settings"].get("profile_every")
    assert every == sampling_interval(SHORT.batch) == 7
    for e in short_run["configs"]:
        if e["name"] == "native":
            continue
        assert e["threads"] == e["batches"] * SHORT.batch
        for phase in PHASES_EVERY_CLONE_RUNS:
            per = e["batches_ns"][phase]
            assert per is not None and len(per["median"]) == len(e["batch_rounds"])
            assert min(per["median"]) > 0 and min(per["mean"]) > 0, (e["name"], phase)


@pytest.mark.parametrize(
    ("batch", "most", "recorded"), [(100, 8, 7), (100, 1, 1), (12, 8, 7), (10, 16, 9), (4, 8, 3)]
)
def test_the_settings_record_the_interval_the_processes_use(
    batch: int, most: int, recorded: int
) -> None:
    settings = Settings(batch=batch, profile_every=most)
    assert settings.profile_interval() == recorded
    configs = parse_config_list("native,sgx/raw")
    assert settings.as_json(configs, 2.0)["profile_every"] == recorded
    assert Settings().profile_every == PROFILE_EVERY == PROFILE_EVERY_OPTION.default


@pytest.mark.parametrize("every", [0, -1, 10_001])
def test_a_run_refuses_a_bad_interval(every: int) -> None:
    with pytest.raises(ValueError, match=f"--profile-every must be in \\[1, 10000\\], got {every}"):
        run([parse_config("sgx/raw")], Settings(profile_every=every))


@pytest.mark.parametrize(
    ("value", "message"), [("0", "must be 1 or more, got 0"), ("eight", "not an integer")]
)
def test_compare_refuses_a_bad_profile_every(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--profile-every", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --profile-every: {message}" in err and "Traceback" not in err


def test_compare_too_large_a_profile_every_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compare", "--profile-every", "20000"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: --profile-every must be in [1, 10000], got 20000")
    assert "Traceback" not in err


def test_compare_with_profile_every_samples_as_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real compare in batches of 5, one clone in 3 timed: the JSON says 3 and every
    batch's phase figures are those of its one or two sampled clones."""
    out = tmp_path / "run.json"
    argv = ["compare", "--configs", "native,sgx/raw", "--duration", "0.1", "--rounds", "1"]
    argv += ["--batch", "5", "--live", "0", "--profile-every", "3", "--json", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    data = json.loads(out.read_text())
    assert data["settings"]["profile_every"] == 3
    (raw,) = [e for e in data["configs"] if e["name"] == "sgx/raw"]
    assert len(raw["batch_rounds"]) == raw["batches"] >= 1
    clone = raw["batches_ns"]["clone"]
    assert clone is not None and min(clone["median"]) > 0
