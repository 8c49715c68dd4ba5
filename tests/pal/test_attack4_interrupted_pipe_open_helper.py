"""A Ctrl-C that ends the opening of an sgx ``pipe:`` end just after its handshake helper
started.

The helper is started by ``thread_start(..., helper=True)``; the start is one marked
critical section, so the KeyboardInterrupt comes as the section ends, with the helper
already running.  The end learns of its helper in that section (``record``), and the
opening's undo wakes and joins it (``_pipe_closing``, as a close of the end does: a
``poll()`` asleep on a descriptor is not woken by its close) before the socket goes.
Before, ``thread_start`` raised instead of returning the helper, the end never learned
of it, and the undo closed the socket under it: the helper slept on in that poll, on a
descriptor number no longer the end's, holding a thread slot, until the handshake's
deadline, watching whatever the program opened next under that number.
"""

from __future__ import annotations

import select
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

from libos_support import interrupted, lowest_free_is, wait_until
from pylibos import pal
from pylibos.pal import _interrupts
from pylibos.pal._clone import Threads
from pylibos.pal._ledger import Ledger
from pylibos.pal._tls_pipes import TlsPipes

from ._pal_support import WAIT_S

_MAIN = threading.main_thread().ident
_START = Threads.thread_start.__code__
_UNDO = TlsPipes._pipe_closing.__code__  # the first step of the opening's undo
_ASIDE = Ledger._aside.__code__


def _asleep_in_poll(ident: int | None) -> bool:
    """Whether the thread ``ident`` is inside the PAL's ``poll`` (a C call under
    ``_aside``, so ``_aside`` is its innermost Python frame)."""
    frame = sys._current_frames().get(ident or 0)
    return frame is not None and frame.f_code is _ASIDE and frame.f_locals["syscall"] == "poll"


def test_ctrl_c_after_the_helper_started_leaves_no_helper_asleep_on_the_closed_end() -> None:
    host = pal.open_host("sgx", max_threads=4)
    assert isinstance(host, pal.SgxHost)
    host.handshake_timeout = 2 * WAIT_S  # the helper's deadline: far beyond the checks below
    srv = host.stream_open("pipe.srv:attack4-helper")
    fired: list[int] = []
    helpers: list[pal.PalThread] = []
    asleep: list[bool] = []
    numbers: list[int] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if threading.get_ident() != _MAIN:
            return None
        # Once the helper is recorded (it runs), a Ctrl-C, deferred to the section's end.
        if frame.f_code is _START and event == "line" and not fired and frame.f_locals.get("made"):
            fired.append(frame.f_lineno)
            _interrupts._on_sigint(signal.SIGINT, frame)
        if frame.f_code is _UNDO and event == "call" and fired:
            # The scheduler lets the helper run to its first wait before the undo.
            helpers.extend(host._threads)
            numbers.append(frame.f_locals["handle"]._sock.fileno())
            asleep.append(
                len(helpers) == 1 and wait_until(lambda: _asleep_in_poll(helpers[0].ident))
            )
        return tracer

    try:
        assert interrupted(lambda: host.stream_open("pipe:attack4-helper"), tracer)
        assert fired and asleep == [True], (fired, asleep)
        assert host.open_handles() == [srv]  # the end itself is undone
        # What a close of the end does, the undo must do too: the helper is woken and
        # ends, its slot comes back.
        assert wait_until(lambda: not host.live_threads(), 1.0), (
            f"{host.live_threads()} still asleep on the closed end, holding a slot "
            f"({host.threads_in_use} in use) until the handshake's deadline"
        )
        assert host.threads_in_use == 1
    finally:
        for helper in helpers:
            if helper.is_alive():
                _wake(srv, numbers[0])
                assert helper.join(WAIT_S)
        host.shutdown()


def _wake(srv: pal.Handle, number: int) -> None:
    """End a helper asleep in a poll of the closed end's old descriptor ``number``:
    something readable gets that number, then the peer (the end's connection, accepted
    from the listener) sends a byte, which wakes the poll; it finds ``number`` readable
    and the helper's recv fails on its closed socket."""
    assert srv._sock is not None
    a, b = lowest_free_is(number, socket.socketpair, _close_pair, _first_fd)
    try:
        b.sendall(b"x")
        assert select.select([srv._sock], [], [], WAIT_S)[0]
        conn, _ = srv._sock.accept()
        try:
            conn.sendall(b"x")
        finally:
            conn.close()
    finally:
        _close_pair((a, b))


def _close_pair(pair: tuple[socket.socket, socket.socket]) -> None:
    for sock in pair:
        sock.close()


def _first_fd(pair: tuple[socket.socket, socket.socket]) -> int:
    return pair[0].fileno()
