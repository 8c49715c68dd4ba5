"""A Ctrl-C inside an inlined list or dict comprehension under ``with lock:`` must not
leave the lock held.

On CPython 3.12 and 3.13 (PEP 709 inlines comprehensions) an exception raised at some
instructions of an inlined comprehension skips the handlers around it: 9ba5a6b moved the
comprehensions out of compare's ``run`` and ``_collect`` for that reason.  A ``with``
statement's exit is such a handler.  ``EpollInstance._wait`` (every ``epoll.poll``, so
asyncio's loop in the main thread) builds ``level`` with a list comprehension under
``self.lock``; ``CloneSamples.samples``, ``per_clone_samples`` and ``_phase_figures``
(the profile's readers) do so under ``self._lock``.  A Ctrl-C there, raised by the PAL's
own SIGINT handler (nothing defers it: no section is open), leaves the lock held by no
one: the epoll instance's next ``register``, ``poll`` or ``close`` waits for ever, and so
does the clone path's next fold of the profile (under a deferred Ctrl-C: a second Ctrl-C
cannot stop it either).

The interrupt comes from the PAL's real handler, ``_interrupts._on_sigint``, called by a
trace function at each line of the function in turn (``sigint_at_line``), the same
line-by-line sweep the LibOS's interrupt tests use.  On 3.11 (no inlining) every case
holds; on 3.12 and 3.13 the comprehension's lines leave the lock held."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from types import CodeType

import pytest

from libos_support import booted, interrupted, sigint_at_line
from pylibos.libos._clone_samples import CloneSamples
from pylibos.libos._interest import EpollInstance

_STUCK_S = 3.0


class _Lock:
    def __init__(self, lock: object) -> None:
        self.lock = lock

    def __call__(self) -> bool:
        return bool(self.lock.locked())  # type: ignore[attr-defined]

    def release(self) -> None:
        self.lock.release()  # type: ignore[attr-defined]


def _watchdog(done: threading.Event, stuck: list[bool], locked: _Lock) -> None:
    if not done.wait(_STUCK_S) and locked():
        stuck.append(True)
        locked.release()


def _sweep(code: CodeType, work: Callable[[], object], locked: _Lock) -> list[int]:
    """Interrupt ``work`` at each line of ``code`` in turn: the lines after which the lock
    was left held (each time released again, so the sweep goes on).  A ``work`` that
    then waits for the lock itself (``poll``'s ``finally``) is let go after ``_STUCK_S``
    by releasing the lock from another thread, and counts as having left it held."""
    held: list[int] = []
    for n in range(1, 200):
        fired: list[int] = []
        done = threading.Event()
        stuck: list[bool] = []

        guard = threading.Thread(target=_watchdog, args=(done, stuck, locked))
        guard.start()
        try:
            interrupted(work, sigint_at_line(code, n, fired))
        finally:
            done.set()
            guard.join()
        if not fired:
            return held
        if stuck:
            held.append(fired[0])
        elif locked():
            held.append(fired[0])
            locked.release()
    raise AssertionError("the sweep never ran out of lines")


def test_a_ctrl_c_in_an_epoll_wait_leaves_its_lock_free() -> None:
    with booted("direct", "eventfd") as libos:
        ep = libos.epoll()
        pairs = [socket.socketpair() for _ in range(3)]
        try:
            for a, _b in pairs:
                ep.register(a.fileno(), 1)  # EPOLLIN: none readable, so poll(0) waits
            inst = ep._inst
            assert isinstance(inst, EpollInstance)
            held = _sweep(EpollInstance._wait.__code__, lambda: ep.poll(0), _Lock(inst.lock))
        finally:
            ep.close()
            for a, b in pairs:
                a.close()
                b.close()
    assert held == [], (
        f"Python {sys.version_info[:2]}: a Ctrl-C at line(s) {sorted(set(held))} of "
        "EpollInstance._wait left the epoll instance's lock held (its next poll hangs)"
    )


@pytest.mark.parametrize("reader", ["samples", "per_clone_samples", "_phase_figures"])
def test_a_ctrl_c_reading_the_profile_leaves_its_lock_free(reader: str) -> None:
    with booted("direct", "eventfd", profile_every=1) as libos:
        for _ in range(4):
            libos.clone(lambda: None).join(10.0)
        profile = libos.profile
        assert isinstance(profile, CloneSamples)
        assert profile.clones >= 4
        fn = getattr(type(profile), reader)
        args = () if reader == "_phase_figures" else ("clone",)
        held = _sweep(fn.__code__, lambda: getattr(profile, reader)(*args), _Lock(profile._lock))
    assert held == [], (
        f"Python {sys.version_info[:2]}: a Ctrl-C at line(s) {sorted(set(held))} of "
        f"CloneSamples.{reader} left the profile's lock held (the next fold hangs)"
    )
