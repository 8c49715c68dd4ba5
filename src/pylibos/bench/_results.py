"""Reading and writing a run's JSON (the format ``_measure.FORMAT_VERSION`` names)."""

from __future__ import annotations

import json
import os
from typing import Any

from ._measure import FORMAT_VERSION

_ENTRY_KEYS = (
    "name", "pal", "events", "pool", "live", "batches", "threads", "phases_ns",
    "proportions", "host_calls_per_clone", "projected_cycles_per_clone",
)  # fmt: skip


class ResultsError(ValueError):
    """A results file that cannot be read as a pylibos run."""


def save(data: dict[str, Any], path: str) -> None:
    """Write atomically, so an interrupted write never leaves half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def load(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise ResultsError(f"{path}: {exc.strerror}") from None
    if not isinstance(data, dict) or "version" not in data:
        raise ResultsError(f"{path}: not a pylibos results file (no 'version')")
    if data["version"] != FORMAT_VERSION:
        raise ResultsError(
            f"{path}: results format version {data['version']!r}; "
            f"this pylibos reads version {FORMAT_VERSION}"
        )
    for key in ("machine", "settings", "configs"):
        if key not in data:
            raise ResultsError(f"{path}: missing {key!r}")
    if not isinstance(data["configs"], list) or not data["configs"]:
        raise ResultsError(f"{path}: 'configs' holds no results")
    for i, entry in enumerate(data["configs"]):
        missing = [k for k in _ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ResultsError(f"{path}: configs[{i}] lacks {', '.join(missing)}")
    return data
