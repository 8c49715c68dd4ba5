"""Ending measuring processes: one that dies mid-run is named, and a Ctrl-C while they
are reaped leaves none running."""

from __future__ import annotations

import os
import signal

import pytest

from pylibos.bench import Settings, parse_config_list, run


def _children() -> list[int]:
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


def test_a_measuring_process_that_dies_is_named_not_a_closed_file_error() -> None:
    """The first configuration's process is killed (OOM killer, say) after its first slice:
    the run fails with the clear RuntimeError naming it, and no process is left."""
    killed: list[int] = []

    def on_slice(name: str) -> None:
        if not killed:
            pid = min(_children())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

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
    import sys
    from types import FrameType
    from typing import Any

    from pylibos.bench import _measure, parse_config
    from pylibos.bench._measure import _Process

    left: list[str] = []
    n = 0
    while True:
        n += 1
        assert n < 40
        process = _Process(parse_config("native"), 0, Settings(batch=2), None)
        process.start()
        process.wait_ready()
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)
        fired: list[int] = []
        count = [0]

        def tracer(frame: FrameType, event: str, arg: object) -> Any:
            if frame.f_code is not _measure._Process._reap.__code__:
                return None
            if event == "line" and not fired:  # noqa: B023
                count[0] += 1  # noqa: B023
                if count[0] == n:  # noqa: B023
                    fired.append(frame.f_lineno)  # noqa: B023
                    raise KeyboardInterrupt
            return tracer

        sys.settrace(tracer)
        try:
            _measure._end([process], 0.0)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        kids = _children()
        assert process._proc is not None and process._proc.stdout is not None
        closed = process._proc.stdout.closed
        if kids or not closed:
            left.append(f"line {fired}: children {kids}, stdout closed {closed}")
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        _measure._end([process], 0.0)
        if not fired:
            break
    assert not left, left
