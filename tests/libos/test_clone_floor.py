"""``benchmarks/clone_floor.py``: the bare clone does the clone's work and leaves the
interpreter as it found it; its bytecode count sits between native and the LibOS's."""

from __future__ import annotations

import _thread
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def floor_mod() -> ModuleType:
    sys.path.insert(0, str(_DIR))
    try:
        spec = importlib.util.spec_from_file_location("clone_floor", _DIR / "clone_floor.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["clone_floor"] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(_DIR))
    return module


_STARTERS = ("_start_new_thread", "_start_joinable_thread")  # 3.13 has only the second


def _starters() -> list[object]:
    return [_thread.start_new_thread] + [vars(threading).get(n) for n in _STARTERS]


def test_floor_does_the_work_and_gives_everything_back(floor_mod: ModuleType) -> None:
    before = _starters()
    floor = floor_mod.FloorClone(pool=4, max_threads=5)
    seen: list[int] = []
    try:
        with floor_mod.installed(floor):
            # What threading.Thread.start calls is the floor's.
            if "_start_joinable_thread" in vars(threading):
                assert vars(threading)["_start_joinable_thread"] == floor.start_joinable_thread
            else:
                assert vars(threading)["_start_new_thread"] == floor.start_new_thread
            ts = [threading.Thread(target=lambda: seen.append(len(floor._table))) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(10)
        assert _starters() == before
        assert len(seen) == 4 and all(n >= 1 for n in seen)  # each ran with its entry
        assert floor.host_calls == 4
        assert floor._table == {} and floor._host_threads == set()
        assert len(floor._slots) == 4 and sorted(floor._pool) == sorted(floor._pipes)
    finally:
        floor.close()


def test_floor_counts_between_native_and_libos(floor_mod: ModuleType) -> None:
    native, _ = floor_mod.count_opcodes(
        __import__("contextlib").nullcontext, 8, floor_mod._primitives()
    )
    floor = floor_mod.FloorClone()
    try:
        total, per = floor_mod.count_opcodes(
            lambda: floor_mod.installed(floor), 8, floor_mod._primitives()
        )
    finally:
        floor.close()
    names = {name for _path, name in per}
    # The new thread's part is counted too (its first frame is the floor's _run).
    assert {"FloorClone._run", "FloorClone._begin", "Thread._bootstrap_inner"} <= names
    assert native < total < native * 1.5


def test_floor_refuses_a_bad_count_plainly() -> None:
    out = subprocess.run(
        [sys.executable, str(_DIR / "clone_floor.py"), "--threads", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "ERROR: --threads and --rounds must be positive"


@pytest.mark.parametrize(("flag", "where"), [((), "on CPU "), (("--all-cpus",), "on any CPU")])
def test_floor_times_on_one_cpu_unless_told(flag: tuple[str, ...], where: str) -> None:
    out = subprocess.run(
        [sys.executable, str(_DIR / "clone_floor.py"), "--rounds", "1", "--threads", "20", *flag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "floor clone" in out.stdout and f"measured {where}" in out.stdout
    if not flag:
        cpu = int(out.stdout.split("measured on CPU ")[1].split(";")[0])
        assert cpu == max(os.sched_getaffinity(0))
