"""Parts of CPython's own test suites, run unmodified under ``pylibos run``.

Natively each part passes (``OK``); under the LibOS it must too, with every test run,
and its threads (or its epoll waits) must really have gone through the LibOS.  The parts
are chosen to cover the hook where a program meets it and to keep the suite fast (they
run side by side, a few seconds in all):

* ``test_thread``, whole: ``_thread.start_new_thread`` used directly (the hook's
  ``_thread`` path, arguments, exceptions reported to ``sys.unraisablehook``, stack
  size, locks, forking with threads).
* ``test_threading``'s ``ThreadTests`` and ``ExceptHookTests``: ``Thread`` objects,
  idents and native ids, ``enumerate``, ``current_thread``, daemon flags, joins, limbo on
  failure, ``excepthook``.  (The rest of ``test_threading`` also passes, 197 tests in about
  17 s; too slow to run on every ``make test``.)
* ``test_selectors``'s ``EpollSelectorTestCase``: ``selectors`` over the LibOS's
  ``select.epoll``, as asyncio uses it.  Most of its time is waiting on the clock (an
  ``alarm(1)`` that interrupts a select, one-second timeouts), so it runs in two
  processes, its waits side by side; the two count as one part in the checks.

The test modules come from the interpreter's ``test`` package; an interpreter built
without it skips these tests and says so.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import unittest
from pathlib import Path
from typing import Any

import pytest

BOUND = 50.0
SELECTORS = "test.test_selectors.EpollSelectorTestCase"
WAITING = ("test_timeout", "test_select_interrupt_exc")
"""Selector tests that each sleep a second, run apart from the rest of ``SELECTORS``."""
PARTS = {
    "thread": ["test.test_thread"],
    "threading": ["test.test_threading.ThreadTests", "test.test_threading.ExceptHookTests"],
    "selectors": [SELECTORS],
}
# The event channel each part runs with: the threads' on eventfd, the epoll waits' on
# raw pipes (the fix the seed proposes).
EVENTS = {"thread": "eventfd", "threading": "eventfd", "selectors": "raw"}


def _count(names: list[str]) -> int:
    try:
        for name in names:
            importlib.import_module(name.split(".")[0] + "." + name.split(".")[1])
    except ImportError as exc:
        pytest.skip(f"CPython's test package is not installed with this Python: {exc}")
    return int(unittest.defaultTestLoader.loadTestsFromNames(names).countTestCases())


def _processes() -> dict[str, tuple[str, list[str]]]:
    """The processes to run: each one's part and the tests it runs (the part's, or a
    share of them)."""
    runs = {part: (part, names) for part, names in PARTS.items() if part != "selectors"}
    module, case = SELECTORS.rsplit(".", 1)
    names = unittest.defaultTestLoader.getTestCaseNames(
        getattr(importlib.import_module(module), case)
    )
    runs["selectors"] = ("selectors", [f"{SELECTORS}.{n}" for n in names if n not in WAITING])
    runs["selectors-waiting"] = ("selectors", [f"{SELECTORS}.{n}" for n in names if n in WAITING])
    return runs


def test_cpython_suites_pass_under_pylibos_run(tmp_path: Path) -> None:
    expected = {part: _count(names) for part, names in PARTS.items()}
    runs = _processes()
    procs = {}
    for run, (part, names) in runs.items():
        out = tmp_path / f"{run}.json"
        cmd = [sys.executable, "-m", "pylibos", "run", "--pal", "sgx", "--events", EVENTS[part],
               "--json", str(out), "--", "-m", "unittest", *names]  # fmt: skip
        procs[run] = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results = {}
    try:
        for run, proc in procs.items():
            _out, err = proc.communicate(timeout=BOUND)
            results[run] = (proc.returncode, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    ran = dict.fromkeys(PARTS, 0)
    stats: dict[str, list[dict[str, Any]]] = {part: [] for part in PARTS}
    for run, (status, err) in results.items():
        part = runs[run][0]
        tail = err.strip().splitlines()[-3:]
        assert status == 0, f"{run}: {err[-3000:]}"
        found = re.search(r"^Ran (\d+) tests? in ", err, re.MULTILINE)
        assert found, f"{run}: {tail}"
        ran[part] += int(found.group(1))
        assert tail[-1].startswith("OK"), f"{run}: {tail}"
        stats[part].append(json.loads((tmp_path / f"{run}.json").read_text()))
        assert stats[part][-1]["exit_code"] == 0
    assert ran == expected
    for part, runs_stats in stats.items():
        if part == "selectors":
            # Its epolls were the LibOS's (each makes an edge watch on the host), and its
            # waits went through the PAL.
            calls = [s["host_calls"] for s in runs_stats]
            assert all(c.get("epoll_create", 0) > 0 for c in calls)
            assert sum(c.get("poll", 0) for c in calls) > 20
        else:
            (one,) = runs_stats
            assert one["threads_created"] >= expected[part]
            # Every start through the LibOS's clone path; the phases over one in 8.
            profile = one["profile"]
            assert profile["clones_started"] == one["threads_created"]
            assert profile["every"] == 8
            assert profile["clones_sampled"] >= one["threads_created"] // 8
            assert one["phases"]["clone"]["count"] == profile["clones_sampled"]
