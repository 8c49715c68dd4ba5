"""A fork while another thread is between two records of the PAL's thread bookkeeping.
The child's fork hook finds the parent's threads through the host's set of live threads
(``_threads``) and counts each as ended, giving back its slot.  A thread that is not in
that set at the fork, but whose record is not finished either, is missed:

- one ending, past its exit work's ``_thread_exited`` (out of the set, slot given back)
  but before ``_finished`` is set and ``_done`` released: a join of it in the child
  never returned (without a timeout, never); now a join sees it has left its host's
  list and counts it ended;
- one starting, past ``_take_slot`` but before it is added to the set: its slot was
  never given back in the child (now the child's slots are counted anew: only its one
  thread holds one).

The thread is held at that line by a line tracer on its own frames (real threads; the
tracer only stops it there), the test's thread forks, and the child reports."""

from __future__ import annotations

import inspect
import sys
import threading
from types import FrameType
from typing import Any

from libos_support import BOUND, in_fork_child
from pylibos import pal
from pylibos.pal._clone import Threads
from pylibos.pal._thread import PalThread


def _line_of(fn: Any, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    hits = [first + i for i, line in enumerate(lines) if line.strip() == text]
    if len(hits) != 1:
        # Not an AssertionError: the expected failure below must not pass for this.
        raise LookupError(f"{text!r} in {fn.__qualname__}: lines {hits}")
    return hits[0]


class _Holder:
    """A line tracer that holds the thread it runs on at ``line`` of ``code`` until
    ``go`` is set (at most BOUND seconds)."""

    def __init__(self, fn: Any, text: str) -> None:
        self.code = fn.__code__
        self.line = _line_of(fn, text)
        self.held = threading.Event()
        self.go = threading.Event()

    def local(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == self.line and not self.held.is_set():
            self.held.set()
            self.go.wait(BOUND)
        return self.local

    def on_call(self, frame: FrameType, event: str, arg: object) -> Any:
        return self.local if frame.f_code is self.code else None


def test_a_child_forked_while_a_thread_ends_can_join_it() -> None:
    host = pal.open_host("direct")
    holder = _Holder(PalThread._run, "self._finished = True")

    def body() -> None:
        run_frame = sys._getframe(1)  # PalThread._run's
        assert run_frame.f_code is holder.code
        run_frame.f_trace = holder.local
        sys.settrace(holder.on_call)

    thread = host.thread_create(body)

    def child() -> str:  # pragma: no cover - runs in the fork child
        joined = thread.join()  # no timeout: it must not wait for a thread not here
        return f"joined {joined}, alive {thread.is_alive()}"

    try:
        assert holder.held.wait(BOUND)
        answer = in_fork_child(child)
        assert answer == "joined True, alive False", (
            f"a thread held between its exit work and _finished at the fork: in the "
            f"child, {answer} (a join without a timeout would never return)"
        )
    finally:
        holder.go.set()
        assert thread.join(BOUND)
        host.shutdown()


def test_a_join_of_a_thread_past_its_hosts_exit_bookkeeping_returns_at_once() -> None:
    """In the process itself: a thread held after it left its host's list (slot given
    back, account gone) and before it marks itself ended has ended for a joiner."""
    host = pal.open_host("sgx", max_threads=2)
    holder = _Holder(PalThread._run, "self._finished = True")

    def body() -> None:
        run_frame = sys._getframe(1)  # PalThread._run's
        run_frame.f_trace = holder.local
        sys.settrace(holder.on_call)

    thread = host.thread_create(body)
    try:
        assert holder.held.wait(BOUND)
        assert isinstance(host, pal.SgxHost) and host.threads_in_use == 1
        assert thread.join(0) and not thread.is_alive()
    finally:
        holder.go.set()
        assert thread.join(BOUND)
        host.shutdown()


def test_a_child_forked_while_a_thread_starts_gets_its_slot_back() -> None:
    host = pal.open_host("sgx", max_threads=2)  # the main thread's slot and one more
    assert isinstance(host, pal.SgxHost)
    holder = _Holder(Threads.thread_start_now, "self._threads.add(thread)")
    go = threading.Event()
    started: list[PalThread] = []

    def starter() -> None:
        sys.settrace(holder.on_call)
        try:
            started.append(host.thread_create(go.wait, BOUND))
        finally:
            sys.settrace(None)

    starting = threading.Thread(target=starter)
    starting.start()

    def child() -> str:  # pragma: no cover - runs in the fork child
        ran: list[int] = []
        try:
            host.thread_create(ran.append, 1).join(BOUND)
        except pal.PalError as exc:
            return f"no thread: {exc}"
        return f"{ran} {host.threads_in_use}"

    try:
        assert holder.held.wait(BOUND)
        answer = in_fork_child(child)
        assert answer == "[1] 1", (
            f"a start held between its slot and its record at the fork: in the child, {answer}"
        )
    finally:
        holder.go.set()
        go.set()
        starting.join(BOUND)
        for thread in started:
            thread.join(BOUND)
        host.shutdown()
