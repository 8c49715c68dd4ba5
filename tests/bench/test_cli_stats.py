"""The command line's statistics: report --vs on saved runs, --until-stable, warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pylibos._cli import main
from pylibos.bench import FORMAT_VERSION, Settings, parse_config_list, run
from pylibos.bench._measure import Run

TINY = ["--configs", "native,sgx/eventfd", "--duration", "0.2", "--rounds", "2", "--live", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two saved runs with the same settings, and one with another batch size."""
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    for name, batch in (("a", "5"), ("b", "5"), ("c", "10")):
        path = folder / f"{name}.json"
        assert main(["compare", *TINY, "--batch", batch, "--json", str(path)]) == 0
        out[name] = path
    return out


def test_saved_run_holds_intervals_verdicts_and_stability(runs: dict[str, Path]) -> None:
    data = json.loads(runs["a"].read_text())
    eventfd = next(e for e in data["configs"] if e["name"] == "sgx/eventfd")
    clone = eventfd["intervals"]["clone.median"]
    assert clone["low"] <= clone["value"] <= clone["high"]
    assert set(eventfd["ratios"]) >= {"start ÷ native"}
    assert len(eventfd["batch_rounds"]) == eventfd["batches"]
    assert set(eventfd["batch_rounds"]) == {0, 1}
    lo, chosen, hi = eventfd["projection"]["cycles"]
    assert lo < chosen < hi
    assert {t["verdict"] for t in data["targets"]} <= {"met", "missed", "inconclusive"}
    stab = data["stability"]
    assert len(stab["load_before"]) == 3 and len(stab["load_after"]) == 3
    assert stab["cpu_count"] >= 1 and isinstance(stab["warnings"], list)


def test_report_vs_sets_two_runs_side_by_side(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = tmp_path / "vs.md"
    assert main(["report", str(runs["a"]), "--vs", str(runs["b"]), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "B ÷ A" in out and "figures with an interval show no significant change" in out
    assert "WARNING" not in out  # same settings, same machine
    text = md.read_text()
    # native has one figure (start), sgx/eventfd four (start and three phases, no
    # handshake): five figures.
    assert text.count("| native | 0 |") == 1 and text.count("| sgx/eventfd | 0 |") == 4
    assert "## Differences" not in text


def _as_version(path: Path, tmp_path: Path, version: int) -> Path:
    """The saved run as an older version wrote it: version 3 has no CPU and no steal;
    version 1 no per-batch samples either."""
    data = json.loads(path.read_text())
    data["version"] = version
    del data["settings"]["cpu"], data["stability"]["steal"]
    if version < 2:
        for e in data["configs"]:
            del e["batches_ns"], e["batch_rounds"]
    old = tmp_path / f"v{version}.json"
    old.write_text(json.dumps(data))
    return old


@pytest.mark.parametrize(
    ("b", "expected"),
    [
        ("c", "WARNING: settings differ: batch is 5 in A and 10 in B"),
        # with native's drift removed, native's own figure is the machine, not counted
        ("a", "4 of 4 figures with an interval show no significant change"),
        ("v3", f"WARNING: format versions differ: {FORMAT_VERSION} in A and 3 in B"),
        (None, "Targets"),  # a version 3 run alone: the keys of version 4, so it renders
    ],
)
def test_report_vs_names_what_differs_and_what_changed(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], b: str | None,
    expected: str,
) -> None:  # fmt: skip
    v3 = _as_version(runs["a"], tmp_path, 3)
    argv = ["report", str(v3)] if b is None else ["report", str(runs["a"]), "--vs"]
    if b is not None:
        argv.append(str(v3 if b == "v3" else runs[b]))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert expected in out and ("on CPU" not in out or b is not None)


def _assert_report_refuses(
    good: Path, bad: Path, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report`` of ``bad``, alone and as the ``--vs`` of ``good``, is one error line
    holding ``message``: exit 1, no traceback."""
    for argv in (["report", str(good), "--vs", str(bad)], ["report", str(bad)]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("ERROR: ") and message in err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("missing", "no such file"),
        ("bad json", "not JSON"),
        ("version 1", "version 1 holds no per-batch samples"),
        ("version 99", f"results format version 99; this pylibos reads version {FORMAT_VERSION}"),
        ("damaged", "batches_ns.start.median is not a list of one figure per batch"),
    ],
)
def test_report_vs_of_a_bad_file_is_one_error_line(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    which: str,
    message: str,
) -> None:
    bad = tmp_path / "bad.json"
    if which == "bad json":
        bad.write_text("{")
    elif which == "version 1":
        bad = _as_version(runs["a"], tmp_path, 1)
    elif which in ("version 99", "damaged"):
        data = json.loads(runs["a"].read_text())
        if which == "version 99":
            data["version"] = 99
        else:
            data["configs"][0]["batches_ns"]["start"]["median"].pop()
        bad.write_text(json.dumps(data))
    _assert_report_refuses(runs["a"], bad, message, capsys)


def test_report_vs_judges_with_the_drift_removed_or_raw_and_the_markdown_holds_both(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = tmp_path / "vs.md"
    argv = ["report", str(runs["a"]), "--vs", str(runs["a"]), "--markdown", str(md)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 of 4 figures with an interval show no significant change once" in out
    text = md.read_text()
    assert "| B ÷ A (95%) | ÷ native's B ÷ A (95%) | change | raw |" in text
    assert "| native | 0 | start |" in text and "the machine: no significant change" in text
    assert "Machine drift between the runs: native ×1.000" in text
    assert main([*argv, "--raw"]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 figures with an interval show no significant change" in out
    assert "| change | drift removed |" in md.read_text()


def test_report_raw_without_vs_is_refused(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(runs["a"]), "--raw"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: --raw judges a comparison") and "Traceback" not in err


def test_report_vs_refuses_a_plot(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", str(runs["a"]), "--vs", str(runs["b"]), "--plot", "x.png"]
    assert main(argv) == 1
    assert "ERROR: --plot draws one run" in capsys.readouterr().err


def test_stored_intervals_are_drawn_again_not_trusted(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    data = json.loads(runs["a"].read_text())
    for t in data["targets"]:
        t["verdict"] = "met"
        t["what"] = "forged"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(data))
    md = tmp_path / "forged.md"
    assert main(["report", str(forged), "--markdown", str(md)]) == 0
    assert "forged" not in md.read_text()


# --- --until-stable ----------------------------------------------------------------------


def _until(
    tmp_path: Path, width: str, budget: str, configs: str = "native,sgx/eventfd"
) -> dict[str, Any]:
    path = tmp_path / "u.json"
    # Planned rounds of 2 x 2 slices of 0.02 s: well inside the smallest budget below even
    # when a batch overruns its slice on a loaded machine.
    argv = [
        "compare", "--configs", configs, "--duration", "0.04", "--rounds", "2",
        "--batch", "5", "--live", "0", "--until-stable", width, "--budget", budget,
        "--json", str(path),
    ]  # fmt: skip
    assert main(argv) == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_until_stable_stops_when_every_interval_is_narrow(tmp_path: Path) -> None:
    # sgx/eventfd alone: its one target is its host calls per clone, a count with no
    # sampling error, so every interval is narrow whatever the machine's load does to the
    # timings (a start ratio's interval can span 20 times its value on a loaded machine).
    # No round beyond the planned two.
    data = _until(tmp_path, "0.01", "30", configs="sgx/eventfd")
    assert [t["what"] for t in data["targets"]] == ["host calls per clone: sgx/eventfd"]
    assert data["stability"]["until_stable"]["reached"] == {"0": True}
    for e in data["configs"]:
        assert max(e["batch_rounds"]) == 1


def test_until_stable_stops_when_the_budget_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No interval is ever a millionth of its value wide: rounds go on until the budget.
    data = _until(tmp_path, "0.000001", "0.4")
    assert data["stability"]["until_stable"]["reached"] == {"0": False}
    rounds = {max(e["batch_rounds"]) for e in data["configs"]}
    assert min(rounds) >= 2  # more than the planned two (0 and 1)
    assert "the budget of 0.4 s at 0 live ended" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--until-stable", "0"], "--until-stable must be a width in (0, 10)"),
        (["--until-stable", "0.1", "--budget", "0"], "--budget must be in (0, 86400]"),
    ],
)
def test_until_stable_bad_values(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", *TINY, *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and message in err


def test_run_asks_for_more_rounds_after_the_planned_ones() -> None:
    asked: list[int] = []

    def more(partial: Run, _elapsed: float) -> bool:
        asked.append(sum(len(e["batch_rounds"]) for e in partial.results))
        return len(asked) < 3

    outcome = run(
        parse_config_list("native"), Settings(duration=0.02, batch=3, rounds=2), more=more
    )
    assert len(asked) == 3  # after round 2, then after each of two extra rounds
    assert asked[0] >= 2 and asked[1] > asked[0]
    (entry,) = outcome.results
    assert sorted(set(entry["batch_rounds"])) == [0, 1, 2, 3]
    assert outcome.load_before is not None and outcome.load_after is not None


def _never_stable(tmp_path: Path, live: str, budget: str) -> dict[str, Any]:
    """``compare`` of native at the ``live`` counts, one planned round, asked for a width
    no run reaches (so rounds are added until ``budget`` is spent): its JSON."""
    path = tmp_path / "n.json"
    argv = [
        "compare", "--configs", "native", "--duration", "0.02", "--rounds", "1", "--batch", "3",
        "--live", live, "--until-stable", "0.000001", "--budget", budget, "--json", str(path),
    ]  # fmt: skip
    assert main(argv) == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_until_stable_adds_rounds_of_every_live_count_together(tmp_path: Path) -> None:
    """Every live count is measured in each round, so extra rounds are added to all of
    them at once, and whether each reached the width is recorded per live count."""
    data = _never_stable(tmp_path, "0,2", "0.1")
    assert data["stability"]["until_stable"]["reached"] == {"0": False, "2": False}
    at_0, at_2 = (sorted(set(e["batch_rounds"])) for e in data["configs"])
    assert at_0 == at_2 and len(at_0) >= 2


def test_until_stable_without_targets_uses_the_clone_medians(tmp_path: Path) -> None:
    data = _never_stable(tmp_path, "0", "0.2")
    assert data["targets"] == []
    assert data["stability"]["until_stable"]["reached"] == {"0": False}
    assert max(data["configs"][0]["batch_rounds"]) >= 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("stability", None, "stability is not an object"),
        ("ghz", "fast", "settings.ghz holds 'fast' where a number belongs"),
        ("ghz", None, "settings.ghz holds None where a number belongs"),
        ("ocall_cycles", "x", "settings.ocall_cycles holds 'x' where a number belongs"),
    ],
)
def test_damaged_stability_or_settings_are_named(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key: str,
    value: object,
    message: str,
) -> None:
    data = json.loads(runs["a"].read_text())
    if key == "stability":
        data["stability"] = value
    else:
        data["settings"][key] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    _assert_report_refuses(runs["a"], bad, message, capsys)


def test_report_vs_names_a_workloads_run(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    workloads = Path(__file__).parents[2] / "benchmarks" / "results" / "workloads.json"
    assert main(["report", str(runs["a"]), "--vs", str(workloads)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and f"{workloads} is a workloads run" in err
    assert "version 1" not in err


@pytest.mark.parametrize("value", ["0", "-1", "21", "x", "2.5", ""])
def test_bad_processes_is_one_error_line_with_exit_code_2(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["compare", "--processes", value, "--duration", "0.1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ERROR: --processes must be a whole number in [1, 20], got {value!r}"


def test_processes_has_help_and_its_default_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    from pylibos.bench._measure import DEFAULT_PROCESSES

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--processes K" in out and f"default {DEFAULT_PROCESSES}" in out
    assert "the K take turns round by round" in out


def test_a_run_says_how_many_processes_measured_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k3.json"
    args = [*TINY, "--batch", "3", "--rounds", "3", "--processes", "3", "--json", str(path)]
    assert main(["compare", *args]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 measuring processes per configuration and live count" in out
    assert "Processes: each configuration at each live count was measured in 3" in out
    data = json.loads(path.read_text())
    assert data["settings"]["processes"] == 3
    assert [[r["slot"] for r in e["replicas"]] for e in data["configs"]] == [[0, 1, 2]] * 2
    # More processes than rounds: some would measure nothing.
    assert main(["compare", *TINY, "--processes", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: --processes 3 is more than --rounds 2")
