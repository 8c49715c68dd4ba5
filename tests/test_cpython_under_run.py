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
  ``select.epoll``, as asyncio uses it.

The test modules come from the interpreter's ``test`` package; an interpreter built
without it skips these tests and says so.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import unittest
from pathlib import Path

import pytest

BOUND = 50.0
PARTS = {
    "thread": ["test.test_thread"],
    "threading": ["test.test_threading.ThreadTests", "test.test_threading.ExceptHookTests"],
    "selectors": ["test.test_selectors.EpollSelectorTestCase"],
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


def test_cpython_suites_pass_under_pylibos_run(tmp_path: Path) -> None:
    expected = {part: _count(names) for part, names in PARTS.items()}
    procs = {}
    for part, names in PARTS.items():
        out = tmp_path / f"{part}.json"
        cmd = [sys.executable, "-m", "pylibos", "run", "--pal", "sgx", "--events", EVENTS[part],
               "--json", str(out), "--", "-m", "unittest", *names]  # fmt: skip
        procs[part] = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results = {}
    try:
        for part, proc in procs.items():
            _out, err = proc.communicate(timeout=BOUND)
            results[part] = (proc.returncode, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for part, (status, err) in results.items():
        tail = err.strip().splitlines()[-3:]
        assert status == 0, f"{part}: {err[-3000:]}"
        assert f"Ran {expected[part]} tests" in err, f"{part}: {tail}"
        assert tail[-1].startswith("OK"), f"{part}: {tail}"
        stats = json.loads((tmp_path / f"{part}.json").read_text())
        assert stats["exit_code"] == 0
        if part == "selectors":
            # Its epolls were the LibOS's (each makes an edge watch on the host), and its
            # waits went through the PAL.
            assert stats["host_calls"].get("epoll_create", 0) > 0
            assert stats["host_calls"].get("poll", 0) > 20
        else:
            assert stats["threads_created"] >= expected[part]
            assert stats["phases"]["clone"]["count"] == stats["threads_created"]
