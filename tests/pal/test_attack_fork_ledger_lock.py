"""A fork while another thread counts a host call.

Every host call is counted under the ledger's lock (``Ledger._call``: the kind's count
and the calling thread's account).  A child forked while another thread of the parent
is inside that lock gets the lock held by a thread it does not have: without an at-fork
reset, the child's first host call waits for it for ever.  The PAL supports a forked
child (it closes its copies, its host shuts down: docs/robustness.md), so the child
must be able to make host calls whatever the parent's threads were doing."""

from __future__ import annotations

import inspect
import os
import select
import signal
import sys
import threading
import warnings
from types import FrameType
from typing import Any

from libos_support import BOUND
from pylibos import pal
from pylibos.pal._ledger import Ledger

CHILD_S = 5.0  # the child's host calls take milliseconds: this is a hang


def _line_in_lock() -> int:
    """The line of ``Ledger._call`` inside its ``with self._calls_lock`` block."""
    lines, first = inspect.getsourcelines(Ledger._call)
    return first + next(i for i, text in enumerate(lines) if "self.calls[kind] += 1" in text)


def test_a_child_forked_while_a_host_call_is_counted_can_make_host_calls() -> None:
    host = pal.open_host("direct")
    code, line = Ledger._call.__code__, _line_in_lock()
    inside, forked = threading.Event(), threading.Event()

    def hold(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line and not inside.is_set():
            inside.set()  # the ledger's lock is held here
            forked.wait(BOUND)
        return hold

    def counter() -> None:
        sys.settrace(lambda frame, event, arg: hold if frame.f_code is code else None)
        try:
            host.close(host.stream_open("eventfd:"))
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=counter)
    read_fd, write_fd = os.pipe()
    pid = -1
    try:
        thread.start()
        assert inside.wait(BOUND)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads run
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                host.close(host.stream_open("eventfd:"))  # host calls: eventfd, close
                os.write(write_fd, b"ok")
            finally:
                os._exit(0)
        forked.set()
        ready, _, _ = select.select([read_fd], [], [], CHILD_S)
        answer = os.read(read_fd, 10) if ready else b""
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pid = -1
        assert answer == b"ok", (
            f"the fork child's first host call did not return within {CHILD_S} s: it waits "
            "for the ledger's lock, held in the parent by a thread the child does not have"
        )
    finally:
        forked.set()
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        thread.join(BOUND)
        os.close(read_fd)
        os.close(write_fd)
        host.shutdown()
