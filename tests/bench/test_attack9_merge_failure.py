"""A measuring process whose result is a well-formed results entry that the merge cannot
take (its live count, or its name, is not its siblings') must fail the run naming that
process, as 6e5dd53 names one whose result is no results entry; after a Ctrl-C it must be
left out, named, with the other processes' results kept.

``_is_entry`` checks the entry's keys and types only; ``merge`` then refuses replicas of
different pairs with a ``ValueError`` ("cannot merge native at 1 live with native at 0
live") raised from ``_collect``'s ``finally`` (its retry loop for a Ctrl-C): the run
fails with a traceback from compare (the CLI turns only ``RunError``, ``OSError`` and
``RuntimeError`` into its one ``ERROR:`` line), naming no process, and after a Ctrl-C
every process's results are lost, not only the one at fault.

The forged answer is real bytes in the process's real answer pipe, written as
``test_attack7_garbage`` does: the process's own answer to the result request, read
first, with its live count changed."""

from __future__ import annotations

import json
import os
import signal

from pylibos.bench._processes import _Process

from .test_attack7_garbage import _inject, run_patched


def _forging_send(done: list[int]):  # type: ignore[no-untyped-def]
    original_send = _Process._send

    def send(self: _Process, request: dict[str, object], work: float, within: float) -> None:
        if request.get("op") != "result" or self.replica != 1 or done:
            original_send(self, request, work, within)
            return
        # The process's own answer, then the same with another live count, forged into
        # the pipe as the answer to a second result request.
        original_send(self, request, work, within)
        answer = self._answer()
        answer["result"]["live"] = int(answer["result"]["live"]) + 1
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)  # so the forged answer is read first
        try:
            original_send(self, {"op": "result"}, work, within)
            _inject(self, json.dumps({**answer, "id": self._sent}).encode() + b"\n")
        finally:
            os.kill(self.pid, signal.SIGCONT)
        done.append(self.pid)

    return send


def test_a_replica_whose_entry_cannot_be_merged_is_named() -> None:
    done: list[int] = []
    _, raised = run_patched("_send", _forging_send(done))
    assert done
    assert isinstance(raised, RuntimeError) and "native (process 2 of 3)" in str(raised), (
        f"the run failed with {raised!r}, naming no process"
    )


def test_after_a_ctrl_c_a_replica_whose_entry_cannot_be_merged_is_left_out() -> None:
    done: list[int] = []
    slices: list[str] = []

    def on_slice(name: str) -> None:
        slices.append(name)
        if len(slices) == 2:
            raise KeyboardInterrupt  # a Ctrl-C between slices: what was measured is kept

    outcome, raised = run_patched("_send", _forging_send(done), on_slice)
    assert done
    assert raised is None, f"the interrupted run lost every result: it raised {raised!r}"
    assert outcome is not None and outcome.interrupted
    assert [e["name"] for e in outcome.results] == ["native"]
    assert any("native (process 2 of 3)" in w for w in outcome.left_out), outcome.left_out
