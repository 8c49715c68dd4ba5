"""Reading a workloads run's JSON (``WorkloadsRun`` of ``pylibos._schema``)."""

from __future__ import annotations

import json
from typing import Any, cast

from .._schema import WORKLOADS_FORMAT_VERSION as FORMAT_VERSION
from .._schema import WorkloadsRun
from ..bench._results import ResultsError, check_run, require

KIND = "workloads"
_ENTRY_KEYS = (
    "workload", "config", "wall_s", "median_s", "threads_created", "host_calls", "result",
    "result_ok", "error",
)  # fmt: skip
_SETTINGS_KEYS = ("workloads", "configs", "repeat", "size", "ocall_cycles", "ghz")


def is_workloads(data: object) -> bool:
    return isinstance(data, dict) and data.get("kind") == KIND


def check(path: str, data: dict[str, Any]) -> WorkloadsRun:
    """``data`` if it is a workloads run this pylibos can render, else ``ResultsError``."""
    if data.get("version") != FORMAT_VERSION:
        raise ResultsError(
            f"{path}: workloads format version {data.get('version')!r}; "
            f"this pylibos reads version {FORMAT_VERSION}"
        )
    if "errors" not in data:
        raise ResultsError(f"{path}: missing 'errors'")
    check_run(path, data, _SETTINGS_KEYS, "results")
    for i, entry in enumerate(data["results"]):
        require(path, f"results[{i}]", entry, _ENTRY_KEYS)
        values = [entry["median_s"], entry["threads_created"], entry["host_calls"]]
        values += entry["wall_s"] if isinstance(entry["wall_s"], list) else [entry["wall_s"]]
        for v in values:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ResultsError(f"{path}: results[{i}] holds {v!r} where a number belongs")
    return cast(WorkloadsRun, data)


def load_if_workloads(path: str) -> WorkloadsRun | None:
    """The checked run if ``path`` holds a workloads run; None if it holds anything else
    (the micro-benchmark's loader then says what is wrong with it)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return check(path, data) if is_workloads(data) else None
