"""A measuring process: one configuration at one live count, driven over a pipe.

``pylibos compare`` measures each configuration in a process of its own (``_measure``
explains why) and interleaves them by telling one process at a time to measure a slice.
This module is that process: ``python -m pylibos.bench._worker``.  It reads one request
per line on stdin and answers each with one line on stdout, both JSON:

* the first line sets it up: ``{"config", "live", "batch", "tls", "cpu", "origin"}``; the answer is
  ``{"ok": true}`` once the configuration, its live threads and the warm-up batch are
  ready, or ``{"error": ..., "kind": ...}``;
* ``{"op": "slice", "seconds": S, "round": R}``: whole batches for ``S`` seconds, in
  round ``R``;
* ``{"op": "result"}``: ``{"result": <the configuration's results entry>, "samples_ns":
  <every per-clone sample of each phase that ran>, "started": <threads started by
  measured batches>}``: with several processes per configuration the parent merges their
  results exactly (``_merge``), the phases' summaries over all their samples;
* ``{"op": "quit"}`` (or the end of stdin): tear down, answer, exit.

Every request carries an ``id``, and its answer the same one.

Ctrl-C is the parent's to handle: this process ignores SIGINT, finishes the slice it is
in, and is asked for its result and told to quit.  What the LibOS or the program would
print goes to stderr: stdout carries only the answers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, TextIO

from ._batches import Subject
from ._configs import parse_config
from ._machine import RunError, ensure_fd_room, fd_need
from ._subjects import make_subject


def _answer(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _failure(exc: BaseException) -> dict[str, Any]:
    kind = "RunError" if isinstance(exc, RunError | OSError) else type(exc).__name__
    return {"error": str(exc) or type(exc).__name__, "kind": kind}


def _result(subject: Subject) -> dict[str, Any]:
    """The answer to ``result``: the entry, and what merging it with the same
    configuration's other processes needs (``_merge``)."""
    entry = subject.result()
    samples = {p: v for p, v in subject.samples().items() if entry["phases_ns"].get(p)}
    return {"result": entry, "samples_ns": samples, "started": subject.started}


def _set_up(setup: dict[str, Any]) -> Subject:
    if setup.get("cpu") is not None:
        # Before any thread exists: every thread of this process inherits the CPU.
        os.sched_setaffinity(0, {int(setup["cpu"])})
    ensure_fd_room(fd_need(setup["live"], setup["batch"]))
    subject = make_subject(
        parse_config(setup["config"]),
        setup["live"],
        setup["batch"],
        setup["tls"],
        setup.get("profile_every"),
    )
    subject.origin = float(setup.get("origin") or 0.0)
    subject.setup()
    return subject


def serve(requests: TextIO, out: TextIO) -> int:
    first = requests.readline()
    if not first:
        return 0
    setup = json.loads(first)
    cpu = setup.get("cpu")
    try:
        subject = _set_up(setup)
    except Exception as exc:
        _answer(out, {**_failure(exc), "id": setup.get("id")})
        return 1
    _answer(out, {"ok": True, "id": setup.get("id")})
    try:
        for line in requests:
            request = json.loads(line)
            op, number = request["op"], request.get("id")
            try:
                if op == "slice":
                    subject.run_slice(float(request["seconds"]), int(request["round"]), cpu)
                    _answer(out, {"ok": True, "id": number})
                elif op == "result":
                    _answer(out, {**_result(subject), "id": number})
                elif op == "quit":
                    quitting = number
                    break
                else:
                    error = {"error": f"unknown request {op!r}", "kind": "ValueError"}
                    _answer(out, {**error, "id": number})
            except Exception as exc:
                _answer(out, {**_failure(exc), "id": number})
        else:
            quitting = None
    finally:
        subject.teardown()
    _answer(out, {"ok": True, "id": quitting})
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The answers get a descriptor of their own; anything else written to stdout goes to
    # stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return serve(sys.stdin, out)


if __name__ == "__main__":
    sys.exit(main())
