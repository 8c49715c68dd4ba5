"""The measuring processes (``_worker``) as the benchmark's parent drives them: ``K`` per
configuration and live count (its replicas, ``--processes``), each started with a Ctrl-C
held back so none is ever unknown,
asked for one slice at a time over a pipe with numbered requests, and ended together
against one deadline."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import IO, Any, Protocol, TypeGuard

from .._schema import Entry
from .._signals import sigint_deferred
from ._configs import Config
from ._machine import RunError
from ._merge import Measured


class ProcessSettings(Protocol):
    """What a measuring process is set up with (``Settings`` has it)."""

    @property
    def batch(self) -> int: ...

    @property
    def tls(self) -> str | None: ...

    def profile_interval(self) -> int: ...


_SETUP_S = 900.0
"""Bound on setting up a configuration (1,000 live sgx/pipe threads are 1,000 handshakes,
beside the other configurations' set-up on one CPU)."""
_ANSWER_S = 300.0
"""Bound on a measuring process's answer beyond the slice it measures."""
_END_S = 3.0
"""Bound on the measuring processes' tearing down, together, before they are killed."""


class _Process:
    """A measuring process (``_worker``) for one configuration at one live count: its
    replica ``replica`` of ``replicas``, which measures the rounds whose replica slot
    (``_resample.round_slots``) is ``replica``.

    Every request carries a number and its answer the same one; an answer to an earlier
    request (a slice Ctrl-C interrupted the wait for) is read and dropped, so a Ctrl-C at
    any point never pairs a request with another's answer.

    Built without starting the process: ``start`` starts it, so the caller can keep the
    object where its ``kill`` is sure to run before a Ctrl-C can leave a process unknown."""

    def __init__(
        self,
        config: Config,
        live: int,
        settings: ProcessSettings,
        cpu: int | None,
        origin: float = 0.0,
        replica: int = 0,
        replicas: int = 1,
    ) -> None:
        """``origin``: the run's start on ``time.monotonic``'s clock (the same in every
        process), from which each slice's start is recorded."""
        self.config = config
        self.live = live
        self.replica = replica
        self.name = (
            config.name if replicas == 1 else f"{config.name} (process {replica + 1} of {replicas})"
        )
        """The configuration's name, and which of its processes this is if it has several."""
        self._setup: dict[str, Any] = {
            "config": config.name, "live": live, "batch": settings.batch,
            "tls": settings.tls, "cpu": cpu, "origin": origin,
            "profile_every": settings.profile_interval(),
        }  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._sent = 0  # the number of the last request
        self._busy_until = 0.0  # when the process should be done with what it was asked
        self._deadline = 0.0  # for the last request's answer
        self._unread = b""  # answers' bytes read from the pipe, not yet taken
        self.ready = False

    def start(self) -> None:
        """Start the process and send it its set-up; ``kill`` ends it whatever happens."""
        with sigint_deferred():
            # Closed in ``kill``, once the process has ended.
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
            # A session of its own: Ctrl-C at the terminal is the parent's to handle.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pylibos.bench._worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,
            )
        self._send(self._setup, 0.0, _SETUP_S)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _send(self, request: dict[str, Any], work: float, within: float) -> None:
        """Send ``request``, which should take the process ``work`` seconds once it is done
        with the requests before, and be answered ``within`` seconds of that."""
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        with sigint_deferred():
            # Counted before it is written: a request written is never numbered again.
            self._sent += 1
            request["id"] = self._sent
            # A request waits behind the one before (a slice still running).
            self._busy_until = max(self._busy_until, time.monotonic()) + work
            self._deadline = self._busy_until + within
            try:
                # One write of one short line: the whole request or none of it.
                os.write(fd, json.dumps(request).encode() + b"\n")
                broken = False
            except BrokenPipeError:
                broken = True
        if broken:
            self._failed()

    def _answer(self) -> dict[str, Any]:
        """The answer to the last request, within its deadline."""
        while True:
            line = self._line()
            try:
                answer = json.loads(line)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise RuntimeError(f"{self.name}: the measuring process answered {line!r:.200}")
            if answer.get("id") == self._sent:
                break
        if "error" in answer:
            kind = RunError if answer.get("kind") == "RunError" else RuntimeError
            raise kind(f"{self.name}: {answer['error']}")
        return answer

    def _line(self) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._unread:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(f"{self.name}: the measuring process did not answer")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                with sigint_deferred():
                    chunk = os.read(fd, 1 << 20)
                    self._unread += chunk
                if not chunk:
                    self._failed()
        with sigint_deferred():
            line, _, self._unread = self._unread.partition(b"\n")
        return line

    def _failed(self) -> None:
        assert self._proc is not None and self._stderr is not None
        self.wait(time.monotonic() + _END_S)
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        self.kill()
        raise RuntimeError(
            f"{self.name}: the measuring process ended (exit code {self._proc.returncode})"
            + (": " + " / ".join(tail) if tail else "")
        )

    def wait_ready(self) -> None:
        self._answer()
        self.ready = True

    def measure(self, seconds: float, round_no: int) -> None:
        self._send({"op": "slice", "seconds": seconds, "round": round_no}, seconds, _ANSWER_S)
        self._answer()

    def result(self, within: float = _ANSWER_S) -> Measured:
        """The process's results (its entry, samples and threads started, for ``merge``),
        asked once the process is done with the requests before (a slice a Ctrl-C
        interrupted the wait for) and answered ``within`` seconds of that."""
        self._send({"op": "result"}, 0.0, within)
        answer = self._answer()
        samples, started = answer.get("samples_ns"), answer.get("started")
        got = answer.get("result")
        if not (
            _is_entry(got)
            and (got["name"], got["live"]) == (self.config.name, self.live)
            and isinstance(samples, dict)
            and all(isinstance(v, list) for v in samples.values())
            and isinstance(started, int)
        ):
            raise RuntimeError(f"{self.name}: the measuring process answered {answer!r:.200}")
        entry: Entry = answer["result"]
        return Measured(entry, self.replica, samples, started)

    def hang_up(self) -> None:
        """Close the process's stdin: at the end of its requests it tears down and exits."""
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()

    def wait(self, deadline: float) -> None:
        """Wait for the process to end, until ``deadline`` (``time.monotonic``) at most."""
        if self._proc is not None:
            with suppress(subprocess.TimeoutExpired):
                self._proc.wait(max(0.0, deadline - time.monotonic()))

    def kill(self, grace: float = 0.0) -> None:
        """End the process (given ``grace`` seconds to end of itself), reap it and close its
        pipes.  Kept from the start of ``start``: nothing is left whatever it interrupted."""
        _end([self], grace)

    def _reap(self) -> None:
        """Kill the process if it still runs, wait for it, close its streams; a Ctrl-C
        meanwhile is raised once it is reaped."""
        self.ready = False  # nothing more to ask of it (``_collect`` skips it)
        interrupted = False
        proc = self._proc
        if proc is not None:
            while True:
                try:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    break
                except KeyboardInterrupt:
                    interrupted = True
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        if self._stderr is not None:
            self._stderr.close()
        if interrupted:
            raise KeyboardInterrupt


_ENTRY_TYPES = {
    "name": str, "live": int, "batches": int, "threads": int, "batch_rounds": list,
    "phases_ns": dict, "batches_ns": dict, "slices": list,
}  # fmt: skip
"""What a results entry must hold for ``merge`` and ``finish`` to read it."""


def _is_entry(value: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and all(
        isinstance(value.get(key), kind) for key, kind in _ENTRY_TYPES.items()
    )


def _end(processes: Sequence[_Process], grace: float) -> None:
    """End ``processes`` together: each one's stdin closed (it tears down and exits), all
    waited for until one shared deadline ``grace`` seconds away, then those still running
    killed; every one reaped, whatever interrupts this."""
    try:
        for process in processes:
            process.hang_up()
        deadline = time.monotonic() + grace
        for process in processes:
            process.wait(deadline)
    finally:
        interrupted = False
        for process in processes:
            while True:  # ``_reap`` may be run again: a Ctrl-C anywhere in it restarts it
                try:
                    process._reap()
                    break
                except KeyboardInterrupt:
                    interrupted = True
        if interrupted:
            raise KeyboardInterrupt
