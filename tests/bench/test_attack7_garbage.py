"""One measuring process of three answers garbage on its answer pipe: the run fails with the
clear error naming the configuration and which of its processes (the ``RuntimeError`` the
CLI prints as one ``ERROR:`` line), and no process or descriptor is left.

The garbage is real bytes in the process's real answer pipe: the test opens that pipe
through ``/proc/<pid>/fd`` (as anything sharing the process's user could) and writes a line
into it, so the parent reads it where it expects the answer to its next request."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from libos_support import open_fds
from pylibos.bench import Run, Settings, parse_config, parse_config_list, run
from pylibos.bench._processes import _Process

from .test_measuring_processes import _children, _end_for_sure


def _inject(process: _Process, line: bytes) -> None:
    """Write ``line`` into ``process``'s answer pipe, from the writing end's side."""
    assert process._proc is not None and process._proc.stdout is not None
    pipe = os.readlink(f"/proc/self/fd/{process._proc.stdout.fileno()}")
    pid = process._proc.pid
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == pipe:
            w = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY)
            try:
                os.write(w, line)
            finally:
                os.close(w)
            return
    raise AssertionError(f"no answer pipe {pipe} in process {pid}")


def run_patched(
    attribute: str, replacement: Any, on_slice: Callable[[str], None] | None = None
) -> tuple[Run | None, BaseException | None]:
    """``compare`` of native in three processes (three rounds), with ``_Process``'s
    ``attribute`` replaced meanwhile: its outcome or what it raised.  Whatever happened, no
    process and no descriptor of the run is left."""
    fds = open_fds()
    mp = pytest.MonkeyPatch()
    mp.setattr(_Process, attribute, replacement)
    outcome: Run | None = None
    raised: BaseException | None = None
    try:
        outcome = run(
            parse_config_list("native"),
            Settings(duration=0.03, batch=2, rounds=3, processes=3),
            on_slice=on_slice,
        )
    except BaseException as exc:
        raised = exc
    finally:
        mp.undo()
        left = _children()
        _end_for_sure(left)
    assert left == []
    assert open_fds() == fds
    return outcome, raised


GARBAGE = [b"\x00\xffnot json\n", b"[1, 2]\n", b'"ok"\n', b"{\n"]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_process_answering_garbage_is_named(garbage: bytes) -> None:
    """One process: the garbage line is taken for the answer to its slice request."""
    process = _Process(parse_config("native"), 0, Settings(batch=2), None, 0.0, 1, 3)
    fds = open_fds()
    try:
        process.start()
        process.wait_ready()
        _inject(process, garbage)
        with pytest.raises(RuntimeError, match=r"native \(process 2 of 3\)"):
            process.measure(0.001, 1)
    finally:
        process.kill(0.0)
    assert _children() == []
    assert open_fds() == fds


@pytest.mark.parametrize("garbage", GARBAGE[:2])
def test_a_run_whose_replica_answers_garbage_fails_naming_it(garbage: bytes) -> None:
    """``compare`` with three processes per configuration: after the first slice the
    second process (round 1's) gets a garbage line in its answer pipe.  The run raises
    the RuntimeError naming it (the CLI's one-line ERROR, exit 1), and nothing is left."""
    injected: list[int] = []
    processes_seen: list[_Process] = []
    original_start = _Process.start

    def start(self: _Process) -> None:
        processes_seen.append(self)
        original_start(self)

    def on_slice(name: str) -> None:
        if not injected:
            assert len(_children()) == 3
            target = next(p for p in processes_seen if p.replica == 1)
            _inject(target, garbage)
            assert target.pid is not None
            injected.append(target.pid)

    _, raised = run_patched("start", start, on_slice)
    assert injected
    assert isinstance(raised, RuntimeError) and "native (process 2 of 3)" in str(raised), raised


def test_a_replica_whose_result_is_not_an_entry_is_named() -> None:
    """``compare`` with three processes per configuration runs its two rounds; then the
    second process's answer to the result request is a JSON object with a result that is
    no results entry (its answer id right, its samples and threads well formed, its
    entry missing every key the merge reads).  The run raises the RuntimeError naming
    that process, not a ``KeyError`` from deep in the merge; nothing is left."""
    original_send = _Process._send
    done: list[int] = []

    def send(self: _Process, request: dict[str, object], work: float, within: float) -> None:
        if request.get("op") != "result" or self.replica != 1 or done:
            original_send(self, request, work, within)
            return
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)  # so the forged answer is read first
        try:
            original_send(self, request, work, within)
            forged = {"result": {"name": "native"}, "samples_ns": {}, "started": 0}
            _inject(self, json.dumps({**forged, "id": self._sent}).encode() + b"\n")
        finally:
            os.kill(self.pid, signal.SIGCONT)
        done.append(self.pid)

    _, raised = run_patched("_send", send)
    assert done
    assert isinstance(raised, RuntimeError) and "native (process 2 of 3)" in str(raised), raised


def test_a_replica_that_dies_while_setting_up_is_named_and_nothing_is_left() -> None:
    """A guarantee that holds: the second of three processes is killed (SIGKILL) before it
    is ready; the run fails naming it, with its exit code, and no process is left."""
    import signal

    fds = open_fds()
    original = _Process.wait_ready
    killed: list[int] = []

    def wait_ready(self: _Process) -> None:
        if self.replica == 1 and not killed:
            assert self.pid is not None
            os.kill(self.pid, signal.SIGKILL)
            killed.append(self.pid)
        original(self)

    mp = pytest.MonkeyPatch()
    mp.setattr(_Process, "wait_ready", wait_ready)
    try:
        with pytest.raises(
            RuntimeError, match=r"native \(process 2 of 3\): the measuring process ended"
        ):
            run(
                parse_config_list("native"), Settings(duration=0.03, batch=2, rounds=3, processes=3)
            )
    finally:
        mp.undo()
        left = _children()
        _end_for_sure(left)
    assert killed
    assert left == []
    assert open_fds() == fds
