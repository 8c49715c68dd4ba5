"""A Ctrl-C in the rollback of a clone whose wait for a thread slot (outside its
critical section) failed: the ``except`` branch of ``LibOS._clone`` (the thread out of
the table, its event destroyed).  The wait ends with ``NOMEM`` when no slot comes free
within ``slot_timeout`` (then one Ctrl-C is enough), or with a first Ctrl-C (then the
second lands in the rollback).

The rollback is one marked critical section, and so is ``PollableEvent.destroy``'s mark
and closes.  Before, neither was: a Ctrl-C between the mark and the closes (or in the
first close, which delivers it as it ends) left handles open that no later ``destroy``
closed (it saw the mark), and one between the table removal and the destroy left the
whole event open; neither in the table any more, so ``LibOS.shutdown`` did not find
them.
"""

from __future__ import annotations

import errno
import inspect
import signal
import sys
import threading
from types import FrameType
from typing import Any

import pytest

from libos_support import BOUND, interrupted, wait_until
from pylibos.libos import LibOS, LibOSThread
from pylibos.pal import SgxHost, _interrupts, open_host
from pylibos.pal._slots import ThreadSlots

_MAIN = threading.main_thread().ident
_AWAIT = ThreadSlots._await_slot.__code__
_lines, _first = inspect.getsourcelines(ThreadSlots._await_slot)
_ACQUIRE = _first + next(i for i, line in enumerate(_lines) if "_doorbell.acquire(" in line)
"""The line of the wait for a slot that sleeps on the doorbell."""


def _asleep_on_the_doorbell() -> bool:
    frame = sys._current_frames().get(_MAIN or 0)
    return frame is not None and frame.f_code is _AWAIT and frame.f_lineno == _ACQUIRE


_COUNTED = ("libos/_libos.py", "libos/_event.py", "libos/_thread.py", "pal/_host.py")


def _noop() -> None:
    pass


def _clone_interrupted_in_rollback(libos: LibOS, ended_by: str, n: int) -> tuple[bool, str]:
    """A clone that finds no slot free; its wait for one ends (``ended_by``: ``"nomem"``,
    the slot timeout; ``"ctrl-c"``, a real SIGINT at the main thread while it sleeps),
    and a Ctrl-C lands at the ``n``-th line of the rollback that follows.  Returns (a
    KeyboardInterrupt came out, where the Ctrl-C in the rollback landed: a
    ``file:line``, or empty when the rollback had fewer lines)."""
    go = threading.Event()
    holder = libos.clone(go.wait, BOUND)  # the last slot
    first = threading.Event()  # the wait has begun (nomem) or is interrupted (ctrl-c)
    count = 0
    second: list[str] = []

    def send_first() -> None:
        if wait_until(_asleep_on_the_doorbell):
            first.set()
            assert _MAIN is not None
            signal.pthread_kill(_MAIN, signal.SIGINT)  # wakes the sleep: EINTR

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if threading.get_ident() != _MAIN:
            return None
        if ended_by == "nomem" and event == "call" and frame.f_code is _AWAIT:
            first.set()  # the files counted have no line in the wait
        if (
            event == "line"
            and first.is_set()
            and not second
            and frame.f_code.co_filename.endswith(_COUNTED)
        ):
            count += 1
            if count == n:
                where = frame.f_code.co_filename.rsplit("/", 2)
                second.append(f"{where[-2]}/{where[-1]}:{frame.f_lineno}")
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    made: list[LibOSThread] = []
    sender = threading.Thread(target=send_first if ended_by == "ctrl-c" else _noop)
    sender.start()
    try:
        reached = interrupted(lambda: made.append(libos.clone(_noop)), tracer)
    except OSError as exc:  # ENOMEM, the rollback not interrupted
        assert ended_by == "nomem" and exc.errno == errno.ENOMEM, exc
        reached = False
    finally:
        sender.join(BOUND)
        go.set()
        assert holder.join(BOUND)
    assert first.is_set() and not made
    return reached, "".join(second)


@pytest.mark.parametrize("ended_by", ["nomem", "ctrl-c"])
@pytest.mark.parametrize("events", ["raw", "eventfd"])
def test_a_ctrl_c_in_the_rollback_of_a_slot_wait_leaves_no_event_open(
    events: str, ended_by: str
) -> None:
    host = open_host("sgx", max_threads=4)  # main, the two workers, and one
    assert isinstance(host, SgxHost)
    host.slot_timeout = 0.02 if ended_by == "nomem" else BOUND
    libos = LibOS(host, events)
    try:
        handles = set(host.open_handles())
        tids = {t.tid for t in libos.threads()}
        in_use = host.threads_in_use
        leaked: dict[str, int] = {}
        n = 1
        while True:
            reached, landed = _clone_interrupted_in_rollback(libos, ended_by, n)
            assert reached == (ended_by == "ctrl-c" or bool(landed)), (n, landed)
            assert wait_until(lambda: host.threads_in_use == in_use)
            # A table entry left is by design: shutdown finds it and destroys its event
            # (docs/robustness.md).  What no table entry holds, nothing will close.
            left = [t for t in libos.threads() if t.tid not in tids]
            held = {h for t in left for h in (t.event.read_handle, t.event._write)}
            extra = set(host.open_handles()) - handles - held
            if extra:
                leaked[landed] = len(extra)
            for thread in left:  # so that the next round starts clean
                libos._table.remove(thread)
                thread.event.destroy()
            for handle in extra:
                host.close(handle)
            if not landed:
                break  # past the rollback's last line
            n += 1
            assert n < 200
        assert n > 3, n  # the second interrupt landed in the rollback
        assert not leaked, f"handles left open, by the line the Ctrl-C landed on: {leaked}"
    finally:
        libos.shutdown()
        host.shutdown()
