"""Damaged results files are named in one ERROR line, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pylibos._cli import main

_COMPARE = Path(__file__).parents[2] / "benchmarks" / "results" / "compare.json"


def _stab(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.setdefault("stability", {}).__setitem__(key, value)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_stab("steal", "x"), id="stability.steal-string"),
        pytest.param(_stab("load_before", "x"), id="stability.load_before-string"),
        pytest.param(_stab("cpu_count", "x"), id="stability.cpu_count-string"),
        pytest.param(lambda d: d["settings"].__setitem__("ghz", 0), id="settings.ghz-zero"),
        pytest.param(
            lambda d: d["settings"].__setitem__("ratios_in_rounds", True),
            id="settings.ratios_in_rounds-bool",
        ),
        pytest.param(
            lambda d: d["settings"].__setitem__("measuring_order", [1]),
            id="settings.measuring_order-ints",
        ),
        pytest.param(lambda d: d["configs"][0].__setitem__("name", 5), id="configs.name-int"),
        pytest.param(lambda d: d["configs"][0].__setitem__("name", [1]), id="configs.name-list"),
        pytest.param(lambda d: d["configs"][0].__setitem__("live", -1), id="configs.live-negative"),
        pytest.param(
            lambda d: d["configs"][0]["slices"][0].__setitem__("at_s", "x"),
            id="configs.slices.at_s-string",
        ),
    ],
)
def test_a_damaged_figure_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[dict[str, Any]], None]
) -> None:
    data = json.loads(_COMPARE.read_text())
    damage(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    try:
        code = main(["report", str(bad), "--markdown", str(tmp_path / "out.md")])
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("ERROR: "), err


def test_a_run_of_format_5_still_renders(tmp_path: Path) -> None:
    """A run saved before every live count shared its rounds (format 5) renders, its live
    scaling resampled live count by live count, as it was measured."""
    data = json.loads(_COMPARE.read_text())
    data["version"] = 5
    data["settings"].pop("live_in_same_rounds", None)
    old = tmp_path / "v5.json"
    old.write_text(json.dumps(data))
    assert main(["report", str(old), "--markdown", str(tmp_path / "out.md")]) == 0
    assert "÷ native's" in (tmp_path / "out.md").read_text()
