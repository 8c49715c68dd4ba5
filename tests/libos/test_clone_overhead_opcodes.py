"""``benchmarks/clone_overhead.py --opcodes``: bytecodes per start, per function, counted
in the creator and in the new thread from its very first frame."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "clone_overhead.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clone_overhead", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _names(per: dict[tuple[str, str], float]) -> set[str]:
    return {name for _path, name in per}


def test_native_counts_the_new_threads_whole_life(bench: ModuleType) -> None:
    total, per = bench._opcodes(0, 8)
    names = _names(per)
    # The new thread's first frames (before threading installs any trace of its own).
    assert {"Thread._bootstrap", "Thread._bootstrap_inner", "Thread.start"} <= names
    assert not any(name.startswith(("LibOS.", "PalThread.")) for name in names)
    assert total == pytest.approx(sum(per.values()))
    # Deterministic, load or not (a lock taken at once or after a wait differs a little).
    again, _ = bench._opcodes(0, 8)
    assert again == pytest.approx(total, rel=0.03)


def test_libos_steps_count_both_sides_of_the_clone(bench: ModuleType) -> None:
    native, _ = bench._opcodes(0, 8)
    primitives = [getattr(mod, name) for mod, name in bench._PRIMITIVES]
    for step in (1, 3):
        total, per = bench._opcodes(step, 8)
        names = _names(per)
        assert "LibOS._clone" in names  # the creator's side
        assert {"PalThread._run", "LibOS._thread_exit"} <= names  # the new thread's, first on
        assert total > native
    # The wrapped primitives are given back.
    assert [getattr(mod, name) for mod, name in bench._PRIMITIVES] == primitives


def test_the_opcodes_table_is_printed(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bench._count_opcodes(4, 5)
    out = capsys.readouterr().out
    assert "native Thread.start()" in out and "LibOS sgx/eventfd, profile on" in out
    assert "÷ native" in out and "LibOS adds" in out
    assert "LibOS._clone" in out
