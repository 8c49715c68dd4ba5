"""The measuring processes of ``compare`` under Ctrl-C, hangs and a shutdown at the worst
moment: the run returns promptly with what was measured, no request is paired with another's
answer, and no process is left."""

from __future__ import annotations

import copy
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import InterruptAtLine, interrupted, open_fds, tracing_only
from pylibos._signals import sigint_deferred
from pylibos.bench import (
    Settings,
    _measure,
    _processes,
    analyse,
    parse_config,
    parse_config_list,
    run,
)
from pylibos.bench._processes import _Process


def _children() -> list[int]:
    """This process's child processes (zombies too: a child not reaped is left)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    out.append(int(name))
        except OSError:
            continue  # ended meanwhile
    return out


def _end_for_sure(pids: list[int]) -> None:
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break


_HUNG_RUN = r"""
import json, os, signal, sys, threading, time
from pylibos.bench import Settings, _measure, parse_config_list, run

_measure._GRACE_S = 1.0  # the bound after a Ctrl-C, shortened to keep the test quick
pids_file = sys.argv[1]
k = int(sys.argv[2])  # processes per configuration: the stopped one is asked again
stopped = []

def children():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        out.append(int(name))
            except OSError:
                pass
    return out

def on_slice(name):
    if stopped:
        return
    kids = sorted(children())
    with open(pids_file, "w") as f:
        json.dump(kids, f)
    # The first configuration's process hangs (stopped); Ctrl-C half a second later.
    os.kill(kids[0], signal.SIGSTOP)
    stopped.append(kids[0])
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()

outcome = run(parse_config_list("native,direct/eventfd"),
              Settings(duration=0.1 * k, batch=3, rounds=2 * k, processes=k),
              on_slice=on_slice)
data = outcome.as_json()
print(json.dumps({"interrupted": outcome.interrupted,
                  "names": [e["name"] for e in outcome.results],
                  "slots": [[r["slot"] for r in e["replicas"]] for e in outcome.results],
                  "left_out": data["stability"]["left_out"],
                  "children": children()}))
"""


@pytest.mark.parametrize("k", [1, 2])
def test_ctrl_c_with_a_hung_measuring_process_returns_promptly(tmp_path: Path, k: int) -> None:
    """A Ctrl-C while one measuring process hangs: the run returns within seconds, with the
    other configuration's results, the hung one named as left out, no process left.  With
    two processes per configuration the hung one's configuration keeps its other process's
    results, merged from that one alone."""
    pids_file = tmp_path / "pids.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HUNG_RUN, str(pids_file), str(k)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        out, err = "", "still collecting 30 s after the Ctrl-C"
    finally:
        if pids_file.exists():
            _end_for_sure(json.loads(pids_file.read_text()))
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert out, err
    report: dict[str, Any] = json.loads(out.splitlines()[-1])
    assert report["interrupted"], err
    assert report["children"] == []
    (lost,) = report["left_out"]
    assert "did not answer" in lost
    if k == 1:
        # One process was stopped: its configuration is named as left out, the other's kept.
        (kept,) = report["names"]
        assert kept not in lost
        assert any(name in lost for name in ("native", "direct/eventfd"))
        return
    # The first process started (native's replica 0) was stopped: named with its replica;
    # native keeps its replica 1, direct/eventfd both of its own.
    assert lost.startswith("native (process 1 of 2): "), lost
    assert report["names"] == ["native", "direct/eventfd"]
    assert report["slots"] == [[1], [0, 1]]


def test_no_sigint_holds_a_ctrl_c_back_while_another_thread_runs() -> None:
    """As rich's progress refresh thread does, another thread runs: a SIGINT inside the
    block is still held back until it ends."""
    stop = threading.Event()
    other = threading.Thread(target=lambda: [None for _ in iter(lambda: stop.wait(0.05), True)])
    other.start()
    inside = after = 0
    try:
        for _ in range(5):
            try:
                with sigint_deferred():
                    os.kill(os.getpid(), signal.SIGINT)
                    end = time.monotonic() + 0.1
                    try:
                        while time.monotonic() < end:
                            pass
                    except KeyboardInterrupt:
                        inside += 1
            except KeyboardInterrupt:
                after += 1
    finally:
        stop.set()
        other.join()
    assert (inside, after) == (0, 5)


_FILES = frozenset({_measure.__file__, _processes.__file__})
"""Where the parent talks to its measuring processes."""
_TALK = frozenset({"_send", "_answer", "_line", "measure", "result"})


@contextmanager
def _sigint_at(n: int) -> Iterator[list[str]]:
    """A real SIGINT sent at the ``n``-th line run by the parent's side of the pipe (sending,
    waiting, reading, keeping an answer); yields where it was sent, once it was."""
    fired: list[str] = []
    count = [0]

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        code: CodeType = frame.f_code
        if code.co_filename not in _FILES or code.co_name not in _TALK:
            return None
        if event == "line" and not fired:
            count[0] += 1
            if count[0] == n:
                fired.append(f"{code.co_name}:{frame.f_lineno}")
                os.kill(os.getpid(), signal.SIGINT)
        return tracer

    sys.settrace(tracer)
    try:
        yield fired
    finally:
        sys.settrace(None)


def test_ctrl_c_at_any_line_of_a_request_pairs_no_request_with_another_answer() -> None:
    """A Ctrl-C at every line in turn of a slice's request and its answer, in one measuring
    process: each later request gets its own answer (a slice's ``ok`` is never taken for a
    result), and no answer is lost (no wait runs into its deadline)."""
    process = _Process(parse_config("native"), 0, Settings(batch=2), None)
    try:
        process.start()
        process.wait_ready()
        n = 0
        while True:
            n += 1
            assert n < 200, "a Ctrl-C still lands somewhere after 200 lines"
            with _sigint_at(n) as fired, suppress(KeyboardInterrupt):
                process.measure(0.001, 0)
            if not fired:
                break
            process.measure(0.001, 1)
            entry = process.result(5.0).entry
            assert entry["name"] == "native" and entry["batches"] >= 1, fired
    finally:
        process.kill(5.0)
    assert n > 10


def test_ctrl_c_just_after_a_slice_request_is_written() -> None:
    """A Ctrl-C raised in the run once the first slice's request has been written, before
    its answer is read: the run keeps its results (the result request gets a number of its
    own, and the slice's answer is not taken for the result)."""
    fired: list[bool] = []
    lines = [0]

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        code = frame.f_code
        if code.co_filename not in _FILES or code.co_name != "measure":
            return None
        if event == "line" and not fired:
            lines[0] += 1
            if lines[0] == 2:  # the line after the request is sent
                fired.append(True)
                raise KeyboardInterrupt
        return tracer

    sys.settrace(tracer)
    try:
        outcome = run(parse_config_list("native"), Settings(duration=0.04, batch=2, rounds=2))
    finally:
        sys.settrace(None)
    assert fired and outcome.interrupted
    (entry,) = outcome.results
    assert entry["batches"] >= 1


def test_killing_a_stopped_measuring_process_is_prompt() -> None:
    """A measuring process that hangs (stopped) is killed within seconds, not after a long
    wait for it to end of itself."""
    process = _Process(parse_config("native"), 0, Settings(batch=3), None)
    process.start()
    pid = process.pid
    assert pid is not None
    try:
        process.wait_ready()
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        process.kill(0.25)
        took = time.monotonic() - t0
    finally:
        _end_for_sure([pid])
        process.kill()
    assert _children() == []
    assert took < 3


def test_ending_many_processes_shares_one_deadline() -> None:
    """Three stopped measuring processes are ended against one deadline, not one each."""
    processes = [_Process(parse_config("native"), 0, Settings(batch=2), None) for _ in range(3)]
    try:
        for p in processes:
            p.start()
        for p in processes:
            p.wait_ready()
            assert p.pid is not None
            os.kill(p.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        _processes._end(processes, 1.0)
        took = time.monotonic() - t0
    finally:
        _end_for_sure([p.pid for p in processes if p.pid is not None])
        _processes._end(processes, 0.0)
    assert _children() == []
    assert took < 2.5


def _start_interrupted_at(n: int) -> list[int]:
    """Build and start a measuring process as ``run`` does, a ``KeyboardInterrupt`` raised
    at the ``n``-th line run in ``_measure`` meanwhile, handled as ``run`` handles it; the
    line it was raised at, if it was."""
    processes: list[_Process] = []
    fired: list[int] = []
    count = [0]

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename not in _FILES:
            return None
        if event == "line" and not fired:
            count[0] += 1
            if count[0] == n:
                fired.append(frame.f_lineno)
                raise KeyboardInterrupt
        return tracer

    sys.settrace(tracer)
    try:
        process = _Process(parse_config("native"), 0, Settings(batch=2), None)
        processes.append(process)
        process.start()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
        _processes._end(processes, 0.0)
    return fired


def test_ctrl_c_while_a_measuring_process_starts_leaves_none() -> None:
    """A Ctrl-C at each line in turn of building and starting a measuring process: once
    it is handled as ``run`` handles it, no process of ours is left (running, or a zombie
    not reaped)."""
    n = 0
    while True:
        n += 1
        assert n < 300
        fired = _start_interrupted_at(n)
        gc.collect(1)  # this start's objects (a full collection each time costs 50 ms)
        assert _children() == [], fired
        if not fired:
            break
    gc.collect()  # whatever a start left to the collector is reported in this test
    assert n > 5


def test_a_result_answer_without_a_result_is_named() -> None:
    """An answer to the result request that holds no result (a confused process) is a clear
    error naming the configuration, not a ``KeyError``."""
    process = _Process(parse_config("native"), 0, Settings(batch=2), None)
    try:
        process.start()
        process.wait_ready()
        # Ask for a slice, then take its "ok" as if it answered the result request.
        process._send({"op": "slice", "seconds": 0.001, "round": 0}, 0.0, 5.0)
        process._sent -= 1
        with pytest.raises(RuntimeError, match="native: the measuring process answered"):
            process.result(5.0)
    finally:
        process.kill(5.0)


def test_the_json_and_the_table_project_the_same_cost() -> None:
    """The JSON's ``projected_cycles_per_clone``, written as the run ends, is the cost the
    table prints: the projection at the chosen OCALL cost, from the same start figure."""
    outcome = run(parse_config_list("native,sgx/raw"), Settings(duration=0.3, batch=5, rounds=3))
    written = [e["projected_cycles_per_clone"] for e in outcome.results]
    data = analyse(copy.deepcopy(outcome.as_json()), force=True)
    shown = [e["projection"] for e in data["configs"]]
    assert len(written) == len(shown) == 2
    for value, projection in zip(written, shown, strict=True):
        assert projection is not None and value == pytest.approx(projection["cycles"][1], rel=1e-9)


def _killing_the_first(killed: list[int]) -> Callable[[str], None]:
    """A progress callback that kills the first measuring process started (SIGKILL, as the
    OOM killer would) after the first slice, noting its pid in ``killed``."""

    def on_slice(name: str) -> None:
        if not killed:
            pid = min(_children())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    return on_slice


def test_a_measuring_process_that_dies_is_named_not_a_closed_file_error() -> None:
    """The first configuration's process is killed (OOM killer, say) after its first slice:
    the run fails with the clear RuntimeError naming it, and no process is left."""
    killed: list[int] = []
    on_slice = _killing_the_first(killed)

    with pytest.raises(RuntimeError, match="the measuring process ended"):
        run(
            parse_config_list("native,direct/eventfd"),
            Settings(duration=0.2, batch=3, rounds=2),
            on_slice=on_slice,
        )
    assert killed
    assert _children() == []


def test_a_ctrl_c_while_reaping_leaves_no_hung_process() -> None:
    """A hung (stopped) measuring process is being ended when one more Ctrl-C lands, at each
    line of ``_reap`` in turn: once ``_end`` returns (or raises KeyboardInterrupt), no
    process of ours is left and its pipes are closed."""
    from pylibos.bench import parse_config
    from pylibos.bench._processes import _Process

    left: list[str] = []
    n = 0
    while True:
        n += 1
        assert n < 40
        process = _Process(parse_config("native"), 0, Settings(batch=2), None)
        process.start()
        # Stopped where it is, set up or not: ``_reap`` ends it the same way, and a
        # process that never imports the benchmark costs a few milliseconds, not half a
        # second, for each of the lines.
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)
        local = InterruptAtLine(n)
        fired = local.fired
        reap = tracing_only(_processes._Process._reap.__code__, local)
        interrupted(partial(_processes._end, [process], 0.0), reap)
        kids = _children()
        assert process._proc is not None and process._proc.stdout is not None
        closed = process._proc.stdout.closed
        if kids or not closed:
            left.append(f"line {fired}: children {kids}, stdout closed {closed}")
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        _processes._end([process], 0.0)
        if not fired:
            break
    assert not left, left


def _interrupt_at_line(n: int, functions: frozenset[str], fired: list[str]) -> Any:
    """A tracer raising KeyboardInterrupt at the ``n``-th line run in ``functions`` of
    ``_FILES``, noting where in ``fired``."""
    count = [0]

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        code = frame.f_code
        if code.co_filename not in _FILES or code.co_name not in functions:
            return None
        if event == "line" and not fired:
            count[0] += 1
            if count[0] == n:
                fired.append(f"{code.co_name}:{frame.f_lineno}")
                raise KeyboardInterrupt
        return tracer

    return tracer


def test_ctrl_c_between_any_two_steps_of_setting_up_k_processes_leaves_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two configurations in two processes each: a KeyboardInterrupt at each line in turn
    of ``run``'s setting up its four processes (building each, starting it, waiting for
    each to be ready, grouping them by replica slot), up to the first round: once ``run``
    returns or raises, no process of ours is left and no descriptor is left open.  (Each
    line of one process's start is ``test_ctrl_c_while_a_measuring_process_starts_leaves_none``.)"""
    monkeypatch.setattr(_measure, "_END_S", 0.0)  # killed at once: keeps the test quick
    settings = Settings(duration=0.02, batch=2, rounds=2, processes=2)
    configs = parse_config_list("native,direct/eventfd")
    watched = frozenset({"run"})
    source = Path(_measure.__file__).read_text().splitlines()
    measuring = 1 + next(
        i for i, line in enumerate(source) if "started = time.perf_counter()" in line
    )
    fds = open_fds()
    n, problems = 0, []
    while True:
        n += 1
        assert n < 400
        fired: list[str] = []
        tracer = _interrupt_at_line(n, watched, fired)
        sys.settrace(tracer)
        outcome = None
        try:
            outcome = run(configs, settings)
        except KeyboardInterrupt:
            pass  # raised before the first process was built: nothing to end
        finally:
            sys.settrace(None)
        gc.collect(1)
        left = _children()
        if left or open_fds() != fds:
            problems.append(f"{fired}: children {left}, descriptors {open_fds() - fds}")
            _end_for_sure(left)
        if outcome is None:
            assert fired and fired[0].startswith("run:"), fired
            continue
        if fired:
            assert outcome.interrupted, fired
        if not fired or fired[0] == f"run:{measuring}":
            break  # past the set-up: every process is ready
    gc.collect()
    assert not problems, problems
    assert n > 20, n


def test_a_measuring_process_that_dies_is_named_with_its_replica() -> None:
    """Two processes per configuration: the first started (native's first) is killed after
    the first slice; the run fails naming the configuration and which of its processes,
    and no process is left."""
    killed: list[int] = []
    on_slice = _killing_the_first(killed)

    with pytest.raises(RuntimeError, match=r"native \(process 1 of 2\): the measuring process"):
        run(
            parse_config_list("native,direct/eventfd"),
            Settings(duration=0.2, batch=3, rounds=2, processes=2),
            on_slice=on_slice,
        )
    assert killed
    assert _children() == []
