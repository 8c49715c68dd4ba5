"""An exiting thread rings the slot doorbell only when a thread may be waiting.

A waiter lists itself in the host's ``_waiting`` before its first look at the free
slots; an exiting thread looks at ``_waiting`` after giving its slot back.  So a slot
given back while a thread waits always wakes it (the waiter here would otherwise sleep
until its ``slot_timeout`` and fail with ``NOMEM``), and a wait that ends, by a slot or by
a Ctrl-C, leaves nothing listed."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from libos_support import wait_until
from pylibos import pal

from ._pal_support import WAIT_S

SLOT_TIMEOUT_S = 30.0  # a missed ring would show as a wait this long, then NOMEM


def _nothing() -> None:
    """A thread body that ends at once."""


def test_a_slot_given_back_while_a_thread_waits_wakes_it() -> None:
    with pal.open_host("sgx", max_threads=2) as host:  # the main thread's slot and one
        assert isinstance(host, pal.SgxHost)
        host.slot_timeout = SLOT_TIMEOUT_S
        go = threading.Event()
        holder = host.thread_create(go.wait, WAIT_S)
        outcome: list[object] = []

        def waiter() -> None:
            started = time.monotonic()
            try:
                thread = host.thread_create(_nothing)
            except pal.PalError as exc:
                outcome.append(exc)
            else:
                outcome.append(time.monotonic() - started)
                thread.join(WAIT_S)

        other = threading.Thread(target=waiter)
        other.start()
        try:
            assert wait_until(lambda: bool(host._waiting)), "the waiter never waited"
            go.set()  # the holder exits: gives its slot back, sees the waiter, rings
            assert holder.join(WAIT_S)
        finally:
            go.set()
            other.join(SLOT_TIMEOUT_S + WAIT_S)
        assert len(outcome) == 1
        waited = outcome[0]
        assert isinstance(waited, float), f"the waiter got {waited}"
        assert waited < SLOT_TIMEOUT_S / 2
        assert host._waiting == []


def test_a_wait_ended_by_ctrl_c_leaves_nothing_listed() -> None:
    """A real SIGINT while the main thread waits for a slot."""
    with pal.open_host("sgx", max_threads=2) as host:
        assert isinstance(host, pal.SgxHost)
        host.slot_timeout = SLOT_TIMEOUT_S
        go = threading.Event()
        holder = host.thread_create(go.wait, WAIT_S)
        main = threading.get_ident()
        sent = threading.Event()

        def interrupt_once_waiting() -> None:
            if wait_until(lambda: bool(host._waiting)):
                sent.set()
                signal.pthread_kill(main, signal.SIGINT)

        sender = threading.Thread(target=interrupt_once_waiting)
        sender.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                host.thread_create(_nothing)
            assert sent.is_set()
            assert host._waiting == []
        finally:
            sender.join(WAIT_S)
            go.set()
            assert holder.join(WAIT_S)
        # The slot comes back and is taken without a wait, and rung for nobody.
        assert host.thread_create(_nothing).join(WAIT_S)
