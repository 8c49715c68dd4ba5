"""The clone path when no thread slot is free: the host thread is not started in the
clone's critical section (``thread_start_now`` declines), and the wait for a slot
(``thread_start``) stays open to a Ctrl-C.  Whatever line of the clone a Ctrl-C lands on,
nothing leaks: no descriptor, slot, table entry or host thread."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from libos_support import BOUND, interrupted, wait_until
from pylibos.libos import LibOS, LibOSThread
from pylibos.pal import SgxHost, _interrupts, open_host
from pylibos.pal._slots import ThreadSlots

_MAIN = threading.main_thread().ident
_AWAIT = ThreadSlots._await_slot.__code__
# The lines a SIGINT lands on: the clone path's and the PAL thread start's, slot wait
# included (an event's making is covered by test_libos_interrupts.py).
_COUNTED = (
    "libos/_libos.py",
    "libos/_thread.py",
    "pal/_clone.py",
    "pal/_slots.py",
    "pal/_thread.py",
)


def _noop() -> None:
    pass


def _clone_once(libos: LibOS, n: int, made: list[LibOSThread]) -> tuple[bool, bool]:
    """One thread holds the last slot; the main thread clones, waits for a slot (the
    holder ends as soon as the wait begins), with a SIGINT at its ``n``-th line event
    (0: none) among the lines of ``_COUNTED``.  Returns (the interrupt reached the
    caller, the wait for a slot ran)."""
    go = threading.Event()
    holder = libos.clone(go.wait, BOUND)
    waited = [False]
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if threading.get_ident() != _MAIN:
            return None
        if event == "call" and frame.f_code is _AWAIT:
            waited[0] = True
            go.set()  # the slot comes free while the clone waits for one
        if event == "line" and n and frame.f_code.co_filename.endswith(_COUNTED):
            count += 1
            if count == n:
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    try:
        reached = interrupted(lambda: made.append(libos.clone(_noop)), tracer)
    finally:
        go.set()
        assert holder.join(BOUND)
    return reached, waited[0]


def test_a_clone_waiting_for_a_slot_starts_its_thread_and_leaks_nothing_on_ctrl_c() -> None:
    host = open_host("sgx", max_threads=4)  # main, the two workers, and one
    assert isinstance(host, SgxHost)
    libos = LibOS(host, "raw", pool=True)
    made: list[LibOSThread] = []
    try:
        # Without an interrupt: the clone waited for the slot, and its thread ran.
        reached, waited = _clone_once(libos, 0, made)
        assert not reached and waited
        (thread,) = made
        assert thread._pal is not None and thread.join(BOUND)
        made.clear()
        tids = {t.tid for t in libos.threads()}
        in_use = host.threads_in_use
        handles = set(host.open_handles())  # the pool holds two events now

        def only_known_or_pooled() -> bool:
            # An event whose clone was cut short is closed; the pool makes new ones.
            pooled = {h for ev in libos._factory._free for h in (ev.read_handle, ev._write)}
            return set(host.open_handles()) <= handles | pooled

        n, hits, hits_from_the_wait_on = 1, 0, 0
        while True:
            reached, waited = _clone_once(libos, n, made)
            hits += reached
            hits_from_the_wait_on += reached and waited
            for t in made:  # a thread that runs despite the interrupt ends as any does
                assert t._pal is not None and t.join(BOUND)
            made.clear()
            assert wait_until(lambda: {t.tid for t in libos.threads()} == tids)
            assert wait_until(lambda: host.threads_in_use == in_use)
            assert wait_until(only_known_or_pooled), n
            if not reached:
                break  # past the clone's last line
            n += 1
            assert n < 400
        assert hits > 20, hits
        assert hits_from_the_wait_on > 10, hits_from_the_wait_on
    finally:
        libos.shutdown()
        host.shutdown()
