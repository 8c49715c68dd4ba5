"""An event destroyed under a thread that still uses it: shutdown destroys the events of
threads (its workers, cloned threads) that did not end within its timeout, and such a
thread may then set, clear or wait on its event.  None of these may make a new channel:
the event is closed, so nothing would ever close that channel (before: a clear of a set
event read from the closed handle, took the failure for a channel the host broke, and
rebuilt it, leaving a new eventfd or pipe open on the host)."""

from __future__ import annotations

import pytest

from libos_support import booted


@pytest.mark.parametrize("kind", ["eventfd", "raw", "pipe"])
@pytest.mark.parametrize("was_set", [True, False], ids=["set", "clear"])
def test_a_destroyed_event_makes_no_new_channel(kind: str, was_set: bool) -> None:
    with booted("sgx", kind) as libos:
        event = libos.create_pollable_event()
        if was_set:
            event.set()
        event.destroy()
        before = set(libos.host.open_handles())
        event.clear()
        event.set()
        event.clear()
        with pytest.raises(OSError):
            event.wait(0.01)
        assert set(libos.host.open_handles()) == before
        assert event.rebuilt == 0 and event.closed and not event.is_set()
