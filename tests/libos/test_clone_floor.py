"""``benchmarks/clone_floor.py``: the bare clone does the clone's work and leaves the
interpreter as it found it; its bytecode count sits between native and the LibOS's.  The
guarded clone keeps the LibOS's guarantees: real threads, everything given back, a start
refused or interrupted by a Ctrl-C at any line leaking nothing.  The timing runs in
measuring processes and names one that fails."""

from __future__ import annotations

import _thread
import importlib.util
import inspect
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import CodeType, FrameType, ModuleType
from typing import Any

import pytest

from libos_support import BOUND, descriptors_exhausted, open_fds, sigint_at_line, tracing_only
from pylibos.pal import critical_owed

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
    assert out.returncode == 2
    assert out.stderr.strip() == "ERROR: --threads and --rounds must be positive"


@pytest.mark.parametrize(("flag", "where"), [((), "on CPU "), (("--all-cpus",), "on any CPU")])
def test_floor_times_on_one_cpu_unless_told(flag: tuple[str, ...], where: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(_DIR / "clone_floor.py"),
            "--processes",
            "2",
            "--rounds",
            "1",
            "--threads",
            "20",
            *flag,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "floor clone" in out.stdout and f"measured {where}" in out.stdout
    assert "guarded clone" in out.stdout and "in 2 processes" in out.stdout
    if not flag:
        cpu = int(out.stdout.split("measured on CPU ")[1].split(";")[0])
        assert cpu == max(os.sched_getaffinity(0))


# -- the guarded clone ----------------------------------------------------------------


def _give_back_checked(guard: Any) -> None:
    """Everything the guarded clone takes is back: events, slots, table, sets."""
    assert guard._table == {}
    assert guard._threads == set() and guard._running == {}
    assert sorted(guard._pool) == sorted(guard._pipes)
    assert len(guard._slots) == guard.max_threads - 1
    assert set(guard._accounts) <= {threading.get_ident()}  # the creator's own
    assert not critical_owed[0]


def _guard(floor_mod: ModuleType, pool: int = 8, max_threads: int = 9) -> Any:
    return floor_mod.GuardedClone(pool=pool, max_threads=max_threads)


def _held(guard: Any, ident: int) -> Any:
    """The guarded clone's thread object of the running thread ``ident``."""
    return next(t for t in list(guard._threads) if t.ident == ident)


def _unraisable_seen(monkeypatch: pytest.MonkeyPatch, start: Any) -> tuple[Any, ...]:
    """What ``sys.unraisablehook`` is given for a thread ``start(boom, ())`` started that
    raises (the thread is waited for through ``start``'s return: see the callers)."""
    seen: list[Any] = []
    got = threading.Event()

    def hook(args: Any) -> None:
        seen.append((args.exc_type, str(args.exc_value), args.err_msg, args.object))
        got.set()

    monkeypatch.setattr(sys, "unraisablehook", hook)
    start()
    assert got.wait(BOUND), "no report of the thread's exception"
    return seen[0]  # type: ignore[no-any-return]


def _boom() -> None:
    raise ValueError("boom")


def test_guarded_runs_real_threads_and_gives_everything_back(
    floor_mod: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fds = open_fds()
    before = _starters()
    native_report = _unraisable_seen(monkeypatch, lambda: _thread.start_new_thread(_boom, ()))
    guard = _guard(floor_mod)
    try:
        with floor_mod.installed(guard):
            if "_start_joinable_thread" in vars(threading):
                assert vars(threading)["_start_joinable_thread"] == guard.start_joinable_thread
            else:
                assert vars(threading)["_start_new_thread"] == guard.start_new_thread
            # threading.Thread: each runs listed in the table, the live set and running.
            seen: list[tuple[int, bool, bool]] = []

            def look() -> None:
                me = threading.get_ident()
                seen.append((len(guard._table), me in guard._running, bool(guard._threads)))

            ts = [threading.Thread(target=look) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(BOUND)
            assert len(seen) == 4 and all(n >= 1 and mine and live for n, mine, live in seen)
            # _thread with keyword arguments, as the primitive takes them.
            go = threading.Event()
            got: list[tuple[Any, ...]] = []

            def kw(a: int, *, b: int) -> None:
                got.append((a, b))
                go.wait(BOUND)

            ident = _thread.start_new_thread(kw, (1,), {"b": 2})
            held = _held(guard, ident)
            go.set()
            assert held.join(BOUND) and held.finished
            assert got == [(1, 2)] and held.exception is None
            # A thread raising: kept on the thread, and reported as natively.
            fail = threading.Event()

            def boom_later() -> None:
                fail.wait(BOUND)
                _boom()

            holder: list[Any] = []

            def start_failing() -> None:
                holder.append(_held(guard, _thread.start_new_thread(boom_later, ())))
                fail.set()

            report = _unraisable_seen(monkeypatch, start_failing)
            assert holder[0].join(BOUND)
            assert isinstance(holder[0].exception, ValueError)
            # The same report natively, but for the function's name (on 3.13, in the
            # message; before, as the object).
            typ, text, message, obj = native_report
            assert report == (
                typ,
                text,
                message.replace(repr(_boom), repr(boom_later)),
                boom_later if obj is _boom else obj,
            )
            # threading.Thread raising: its excepthook, as natively.
            hooked: list[Any] = []
            monkeypatch.setattr(threading, "excepthook", hooked.append)
            t = threading.Thread(target=_boom)
            t.start()
            t.join(BOUND)
            assert len(hooked) == 1 and hooked[0].exc_type is ValueError
            assert hooked[0].thread is t
        assert _starters() == before
        _give_back_checked(guard)
        assert guard.host_calls == guard.threads_created == 7
        assert guard.starts_failed == 0
    finally:
        guard.close()
    assert open_fds() == fds


def test_guarded_start_refused_gives_back_what_it_took(floor_mod: ModuleType) -> None:
    fds = open_fds()
    guard = _guard(floor_mod, pool=4, max_threads=2)  # one slot
    go = threading.Event()
    try:
        with floor_mod.installed(guard):
            first = threading.Thread(target=go.wait, args=(BOUND,))
            first.start()
            second = threading.Thread(target=lambda: None)
            with pytest.raises(RuntimeError, match="can't start new thread: no thread slot"):
                second.start()
            assert second not in threading._limbo  # type: ignore[attr-defined]
            with pytest.raises(RuntimeError, match="no thread slot free"):
                _thread.start_new_thread(lambda: None, ())
            # Only the first thread's: one entry, one event out, no slot.
            assert len(guard._table) == 1 and len(guard._threads) == 1
            assert len(guard._pool) == 3 and guard._slots == []
            go.set()
            first.join(BOUND)
        _give_back_checked(guard)
        assert guard.threads_created == 1 and guard.starts_failed == 2
    finally:
        go.set()
        guard.close()
    assert open_fds() == fds


def test_guarded_start_with_no_event_free_fails(floor_mod: ModuleType) -> None:
    guard = _guard(floor_mod, pool=1, max_threads=4)
    go = threading.Event()
    try:
        with floor_mod.installed(guard):
            first = threading.Thread(target=go.wait, args=(BOUND,))
            first.start()
            with pytest.raises(RuntimeError, match="can't start new thread: no event free"):
                threading.Thread(target=lambda: None).start()
            assert len(guard._slots) == 2  # the one thread's slot only
            go.set()
            first.join(BOUND)
        _give_back_checked(guard)
    finally:
        go.set()
        guard.close()


def test_guarded_start_closed_meanwhile_gives_back_everything(floor_mod: ModuleType) -> None:
    """A close landing after the thread is recorded, before its start (the second closed
    test): the start is refused and the event, table entry, slot and set entry come back."""
    guard = _guard(floor_mod)
    code = _creator(floor_mod)
    lines, first = inspect.getsourcelines(code)
    second = [first + i for i, line in enumerate(lines) if "if self.closed:" in line][1]

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == second:
            assert len(guard._threads) == 1 and len(guard._table) == 1
            guard.closed = True
        return local

    try:
        with floor_mod.installed(guard):
            thread = threading.Thread(target=lambda: None)
            sys.settrace(tracing_only(code, local))
            try:
                with pytest.raises(RuntimeError, match="closed"):
                    thread.start()
            finally:
                sys.settrace(None)
            assert thread not in threading._limbo  # type: ignore[attr-defined]
            with pytest.raises(RuntimeError, match="closed"):  # and refused from the start
                _thread.start_new_thread(lambda: None, ())
        _give_back_checked(guard)
        assert guard.threads_created == 0 and guard.starts_failed == 1
    finally:
        guard.close()


def _creator(floor_mod: ModuleType) -> CodeType:
    cls = floor_mod.GuardedClone
    fn = (
        cls.start_joinable_thread
        if "_start_joinable_thread" in vars(threading)
        else (cls.start_new_thread)
    )
    return fn.__code__  # type: ignore[no-any-return]


def test_a_ctrl_c_at_every_line_of_the_guarded_start_leaks_nothing(floor_mod: ModuleType) -> None:
    """A SIGINT, through the PAL's own handler, at the n-th line the creator runs, for
    every n: either the thread runs (and gives everything back as it ends), or nothing is
    taken and the ``threading.Thread`` is out of ``threading._limbo``."""
    fds = open_fds()
    guard = _guard(floor_mod)
    code = _creator(floor_mod)
    outcomes: dict[int, str] = {}
    try:
        with floor_mod.installed(guard):
            for n in range(1, 200):
                fired: list[int] = []
                thread = threading.Thread(target=lambda: None)
                came = False
                created = guard.threads_created
                sys.settrace(sigint_at_line(code, n, fired))
                try:
                    thread.start()
                except KeyboardInterrupt:
                    came = True
                finally:
                    sys.settrace(None)
                if not fired:
                    break  # past the last line
                assert came, f"the interrupt at line {fired[0]} was lost"
                if guard.threads_created > created:  # (threading's ident may come later)
                    outcomes[fired[0]] = "ran"
                    assert thread._started.wait(BOUND)  # type: ignore[attr-defined]
                    thread.join(BOUND)
                else:
                    outcomes[fired[0]] = "not started"
                    assert guard._table == {} and guard._threads == set()
                assert thread not in threading._limbo, f"left in _limbo (line {fired[0]})"  # type: ignore[attr-defined]
                assert not thread.is_alive()
                _give_back_checked(guard)
                made = int(repr(guard._made)[6:-1])
                assert made - guard.starts_failed == guard.threads_created
        assert set(outcomes.values()) == {"ran", "not started"}, outcomes
        assert len(outcomes) >= 20
    finally:
        guard.close()
    assert open_fds() == fds


def test_guarded_uninstalled_starts_natively(floor_mod: ModuleType) -> None:
    """A replacement held past the uninstall starts threads as the interpreter does."""
    guard = _guard(floor_mod)
    try:
        with floor_mod.installed(guard):
            start = guard.start_new_thread
        done = threading.Event()
        start(lambda: done.set(), ())
        assert done.wait(BOUND)
        assert guard.threads_created == 0 and guard.host_calls == 0
    finally:
        guard.close()


def test_guarded_opcodes_listed(floor_mod: ModuleType) -> None:
    out = subprocess.run(
        [sys.executable, str(_DIR / "clone_floor.py"), "--opcodes", "--threads", "8"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows: dict[str, float] = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[1].replace(",", "").replace(".", "").isdigit():
            rows[cells[0]] = float(cells[1].replace(",", ""))
    libos = next(k for k in rows if k.startswith("LibOS sgx/raw+pool"))
    assert rows["native"] < rows["floor clone"] < rows["guarded clone"] < rows[libos], rows
    libos_eventfd = next(k for k in rows if k.startswith("LibOS sgx/eventfd"))
    assert rows["guarded clone"] < rows["guarded eventfd"] < rows[libos_eventfd], rows
    assert "GuardedClone._run" in out.stdout
    assert "GuardedEventfdClone._close_eventfd" in out.stdout


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_processes_refused_plainly(value: str) -> None:
    out = subprocess.run(
        [sys.executable, str(_DIR / "clone_floor.py"), "--processes", value],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"ERROR: --processes must be at least 1 (1: time in this process), got {value}"
    )


@pytest.mark.parametrize(
    ("child", "says"),
    [
        ("import sys; print('partial'); sys.stderr.write('boom here\\n'); sys.exit(3)",
         "measuring process 1 of 2 failed (exit status 3); its stderr ends:\n  boom here"),
        ("print('no json')", "measuring process 1 of 2 printed no result; its output ends:\n"
         "  no json"),
    ],
)  # fmt: skip
def test_a_failing_measuring_process_is_named(
    floor_mod: ModuleType, monkeypatch: pytest.MonkeyPatch, child: str, says: str
) -> None:
    monkeypatch.setattr(floor_mod, "_child_command", lambda *a: [sys.executable, "-c", child])
    with pytest.raises(SystemExit) as exc:
        floor_mod._time(2, 1, 10, True)
    assert str(exc.value.code) == f"ERROR: {says}"


# -- the guarded clone with an eventfd per start ------------------------------------------


def _eventfd_guard(floor_mod: ModuleType, max_threads: int = 9) -> Any:
    guard = floor_mod.GuardedEventfdClone(max_threads=max_threads)
    if guard._registry is None:
        guard.close()
        pytest.skip("kcmp is not to be had here: the eventfd is closed unchecked")
    return guard


def test_guarded_eventfd_opens_and_closes_an_eventfd_per_start(floor_mod: ModuleType) -> None:
    fds = open_fds()
    guard = _eventfd_guard(floor_mod)
    go = threading.Event()
    try:
        with floor_mod.installed(guard):
            seen: list[int] = []

            def hold() -> None:
                seen.append(guard._running[threading.get_ident()].event)
                go.wait(BOUND)

            ts = [threading.Thread(target=hold) for _ in range(3)]
            for t in ts:
                t.start()
            while len(seen) < 3:  # each has appended once it runs (bounded by BOUND)
                ts[0].join(0.01)
                assert all(t.is_alive() for t in ts)
            # Three live eventfds of their own, each open and an eventfd.
            assert len(set(seen)) == 3
            assert all(os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]" for fd in seen)
            go.set()
            for t in ts:
                t.join(BOUND)
        for fd in seen:
            with pytest.raises(OSError):
                os.fstat(fd)  # closed at the thread's exit (no other opened meanwhile)
        assert guard.calls == {"clone_thread": 3, "eventfd": 3, "close": 3}
        assert guard._table == {} and guard._threads == set() and guard._running == {}
        assert len(guard._slots) == guard.max_threads - 1
    finally:
        go.set()
        guard.close()
    assert open_fds() == fds


def test_guarded_eventfd_never_closes_a_number_the_host_gave_another_object(
    floor_mod: ModuleType,
) -> None:
    """Play the host: while the thread runs, close its eventfd and put another object
    (the null device) at its number.  At the thread's exit the identity check finds
    another file there, and the number is left alone."""
    fds = open_fds()
    guard = _eventfd_guard(floor_mod)
    running = threading.Event()
    go = threading.Event()
    numbers: list[int] = []
    try:
        with floor_mod.installed(guard):

            def hold() -> None:
                numbers.append(guard._running[threading.get_ident()].event)
                running.set()
                go.wait(BOUND)

            t = threading.Thread(target=hold)
            t.start()
            assert running.wait(BOUND)
            number = numbers[0]
            other = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.dup2(other, number)  # closes the eventfd, the number now the device's
            finally:
                os.close(other)
            go.set()
            t.join(BOUND)
            assert not t.is_alive()
        try:
            assert os.readlink(f"/proc/self/fd/{number}") == os.devnull
        finally:
            os.close(number)
    finally:
        go.set()
        guard.close()
    assert open_fds() == fds


def test_guarded_eventfd_refused_by_the_host_fails_and_leaks_nothing(
    floor_mod: ModuleType,
) -> None:
    fds = open_fds()
    guard = _eventfd_guard(floor_mod)
    try:
        with floor_mod.installed(guard):
            t = threading.Thread(target=lambda: None)
            with descriptors_exhausted(), pytest.raises(RuntimeError, match="can't start new"):
                t.start()
            assert t not in threading._limbo  # type: ignore[attr-defined]
            assert guard._table == {} and guard._threads == set()
            assert len(guard._slots) == guard.max_threads - 1
            assert guard.starts_failed == 1 and guard.threads_created == 0
            t = threading.Thread(target=lambda: None)  # and it starts again after
            t.start()
            t.join(BOUND)
        assert guard.threads_created == 1
    finally:
        guard.close()
    assert open_fds() == fds
