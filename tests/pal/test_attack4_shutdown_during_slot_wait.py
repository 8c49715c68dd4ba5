"""``Host.shutdown`` while a thread start waits for a thread slot (``thread_start``'s
loop, in ``_await_slot``).

A start racing shutdown fails with ``ShutDownError`` (docs/robustness.md), and so does
one asleep on the slot doorbell: shutdown rings it.  Before, it slept on for the whole
``slot_timeout`` after the host was shut down, then failed with ``NOMEM``
("sgx.max_threads reached"), as if the host were merely full.
"""

from __future__ import annotations

import threading
import time

from libos_support import wait_until, waits_for_a_thread_slot
from pylibos import pal
from pylibos.pal import ShutDownError

from ._pal_support import WAIT_S


def test_a_start_waiting_for_a_slot_fails_with_shutdown_as_the_host_shuts_down() -> None:
    host = pal.open_host("sgx", max_threads=2)  # the main thread and one
    assert isinstance(host, pal.SgxHost)
    host.slot_timeout = 2 * WAIT_S
    go = threading.Event()
    holder = host.thread_create(go.wait, WAIT_S)  # the last slot, on nothing shutdown wakes
    outcome: list[object] = []
    ended = threading.Event()

    def start() -> None:
        try:
            outcome.append(host.thread_create(int))
        except BaseException as exc:
            outcome.append(exc)
        finally:
            ended.set()

    starter = threading.Thread(target=start)
    starter.start()
    try:
        assert wait_until(lambda: waits_for_a_thread_slot(starter.ident))
        host.shutdown(0.05)  # the holder does not end: shutdown gives up on it
        shut = time.monotonic()
        assert ended.wait(1.0), (
            f"the start still waits for a slot {time.monotonic() - shut:.1f} s after the "
            "host was shut down"
        )
        (got,) = outcome
        assert isinstance(got, ShutDownError), repr(got)
    finally:
        go.set()
        assert holder.join(WAIT_S)
        starter.join(WAIT_S)
        for thread in outcome:
            if isinstance(thread, pal.PalThread):
                thread.join(WAIT_S)
        host.shutdown()
