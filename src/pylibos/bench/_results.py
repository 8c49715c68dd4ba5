"""Reading and writing a run's JSON (the format ``_measure.FORMAT_VERSION`` names)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any, cast

from .._schema import FORMAT_VERSION, READABLE_VERSIONS, TIMED, RunData

_ENTRY_KEYS = (
    "name", "pal", "events", "pool", "live", "batches", "threads", "phases_ns",
    "proportions", "host_calls_per_clone", "projected_cycles_per_clone", "batches_ns",
    "batch_rounds",
)  # fmt: skip

_OLDER = {
    2: "version 2 timed LibOS.clone, not the application's Thread.start(), so its "
    "÷ native compares different work; re-run `pylibos compare` with this pylibos",
    1: "version 1 holds no per-batch samples, so no interval can be drawn from it; "
    "re-run `pylibos compare` with this pylibos to compare or re-render it",
}


MACHINE_KEYS = ("cpu", "cores", "python", "pylibos")
_SETTINGS_KEYS = ("duration_s", "batch", "rounds", "ocall_cycles", "ghz")


def require(path: str, where: str, value: object, keys: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise ResultsError(f"{path}: {where} is not an object")
    missing = [k for k in keys if k not in value]
    if missing:
        raise ResultsError(f"{path}: {where} lacks {', '.join(missing)}")


def _numbers(path: str, where: str, values: Iterable[object]) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ResultsError(f"{path}: {where} holds {v!r} where a number belongs")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_stability(path: str, stability: object) -> None:
    """What the run recorded of the machine: each figure absent, null or of its type."""
    if not isinstance(stability, dict):
        raise ResultsError(f"{path}: stability is not an object")
    for key in ("load_before", "load_after"):
        load = stability.get(key)
        if load is not None:
            if not isinstance(load, list) or len(load) != 3:
                raise ResultsError(f"{path}: stability.{key} is not three load averages")
            _numbers(path, f"stability.{key}", load)
    cpus = stability.get("cpu_count")
    if cpus is not None and (not _count(cpus) or cpus < 1):
        raise ResultsError(f"{path}: stability.cpu_count is {cpus!r}, not a CPU count")
    if stability.get("steal") is not None:
        _numbers(path, "stability.steal", [stability["steal"]])
    for key in ("left_out", "warnings"):
        names = stability.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ResultsError(f"{path}: stability.{key} is not a list of strings")


def check_run(path: str, data: dict[str, Any], settings: tuple[str, ...], results: str) -> None:
    """What every saved run holds (the benchmark's and the workloads'): the machine, the
    settings (``settings`` keys) and a non-empty list of results under ``results``."""
    for key in ("machine", "settings", results):
        if key not in data:
            raise ResultsError(f"{path}: missing {key!r}")
    require(path, "machine", data["machine"], MACHINE_KEYS)
    require(path, "settings", data["settings"], settings)
    if not isinstance(data[results], list) or not data[results]:
        raise ResultsError(f"{path}: {results!r} holds no results")


class ResultsError(ValueError):
    """A results file that cannot be read as a pylibos run."""


def save(data: Mapping[str, Any], path: str) -> None:
    """Write atomically, so an interrupted write never leaves half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def load(path: str) -> RunData:
    """The run saved at ``path``, checked against the schema (``_schema``); a
    ``ResultsError`` naming the first thing wrong otherwise.  Versions 3 to 10 are read
    (the same keys; version 10 adds the processes per configuration); older ones are
    refused, saying why."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise ResultsError(f"{path}: {exc.strerror}") from None
    if not isinstance(data, dict) or "version" not in data:
        raise ResultsError(f"{path}: not a pylibos results file (no 'version')")
    if data["version"] not in READABLE_VERSIONS:
        why = _OLDER.get(data["version"]) if isinstance(data["version"], int) else None
        raise ResultsError(
            f"{path}: results format version {data['version']!r}; "
            f"this pylibos reads version {FORMAT_VERSION}" + (f" ({why})" if why else "")
        )
    check_run(path, data, _SETTINGS_KEYS, "configs")
    for key in _SETTINGS_KEYS:
        _numbers(path, f"settings.{key}", [data["settings"][key]])
    if not data["settings"]["ghz"] > 0 or not math.isfinite(data["settings"]["ghz"]):
        raise ResultsError(f"{path}: settings.ghz is {data['settings']['ghz']!r}, not a clock rate")
    k = data["settings"].get("processes", 1)
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 1000):
        raise ResultsError(f"{path}: settings.processes is {k!r}, not a count of processes")
    for key in ("ratios_in_rounds", "measuring_order"):
        names = data["settings"].get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ResultsError(f"{path}: settings.{key} is not a list of names")
    if "stability" in data:
        _check_stability(path, data["stability"])
    for i, entry in enumerate(data["configs"]):
        where = f"configs[{i}]"
        require(path, where, entry, _ENTRY_KEYS)
        require(path, f"{where}.phases_ns", entry["phases_ns"], TIMED)
        for phase in TIMED:
            stats = entry["phases_ns"][phase]
            if stats is not None:
                require(path, f"{where}.phases_ns.{phase}", stats, ("mean", "median", "p95"))
                _numbers(path, f"{where}.phases_ns.{phase}", stats.values())
        require(path, f"{where}.proportions", entry["proportions"], ("p1", "p2", "p3"))
        _numbers(path, where, [entry["host_calls_per_clone"]])
        for key in ("name", "pal", "events"):  # native has no PAL and no events
            if not isinstance(entry[key], str) and not (key != "name" and entry[key] is None):
                raise ResultsError(f"{path}: {where}.{key} is {entry[key]!r}, not a name")
        for key in ("live", "batches"):
            if not _count(entry[key]):
                raise ResultsError(f"{path}: {where}.{key} is {entry[key]!r}, not a count")
        slices = entry.get("slices", [])
        if not isinstance(slices, list):
            raise ResultsError(f"{path}: {where}.slices is not a list")
        for j, one in enumerate(slices):
            require(path, f"{where}.slices[{j}]", one, ("round", "others", "kept"))
            _numbers(path, f"{where}.slices[{j}]", [one["round"]])
            if "at_s" in one:
                _numbers(path, f"{where}.slices[{j}].at_s", [one["at_s"]])
            if one["others"] is not None:
                _numbers(path, f"{where}.slices[{j}].others", [one["others"]])
            if "reference_ns" in one:
                ref = one["reference_ns"]
                if not isinstance(ref, list) or len(ref) != 2:
                    raise ResultsError(f"{path}: {where}.slices[{j}].reference_ns is not two times")
                _numbers(path, f"{where}.slices[{j}].reference_ns", ref)
        rounds = entry["batch_rounds"]
        if not isinstance(rounds, list):
            raise ResultsError(f"{path}: {where}.batch_rounds is not a list")
        _numbers(path, f"{where}.batch_rounds", rounds)
        if "batch_reference_ns" in entry:
            refs = entry["batch_reference_ns"]
            if not isinstance(refs, list) or len(refs) != len(rounds):
                raise ResultsError(
                    f"{path}: {where}.batch_reference_ns is not a list of one figure per batch"
                )
            _numbers(path, f"{where}.batch_reference_ns", refs)
        require(path, f"{where}.batches_ns", entry["batches_ns"], TIMED)
        for phase in TIMED:
            per = entry["batches_ns"][phase]
            if per is None:
                continue
            at = f"{where}.batches_ns.{phase}"
            require(path, at, per, ("median", "mean"))
            for stat in ("median", "mean"):
                if not isinstance(per[stat], list) or len(per[stat]) != len(rounds):
                    raise ResultsError(f"{path}: {at}.{stat} is not a list of one figure per batch")
                _numbers(path, f"{at}.{stat}", per[stat])
    data.setdefault("interrupted", False)
    data.setdefault("stability", {})
    for key in ("load_before", "load_after", "cpu_count", "governor"):
        data["stability"].setdefault(key, None)
    return cast(RunData, data)
