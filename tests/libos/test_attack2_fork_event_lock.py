"""A child forked while another thread of the parent is inside an event's lock (a
``set`` of the main thread's event, say: any thread that wakes another holds that
event's lock for the host call).  The PAL makes its own locks anew in a fork child (the
host's, the ledger's, the deferral's, the edge watches'), since no thread of the child
will ever release one the parent's thread held; the LibOS's event locks are not, so the
child's ``LibOS.shutdown``, which destroys the events left in its table (the main
thread's among them) under each one's lock, waits for ever.

The parent's thread is held inside the lock by a line tracer on its own frames (a real
thread, stopped at one line as the scheduler may stop it)."""

from __future__ import annotations

from libos_support import fork_while_held, seconds_taken
from pylibos import pal
from pylibos.libos import LibOS
from pylibos.libos._event import PollableEvent


def test_a_child_forked_while_a_thread_sets_an_event_shuts_its_libos_down() -> None:
    host = pal.open_host("direct")
    libos = LibOS(host, "eventfd")
    main_event = libos.current_thread().event
    try:
        answer = fork_while_held(
            libos.clone,
            main_event.set,
            PollableEvent.set.__code__,
            lambda frame: frame.f_locals["self"]._lock.locked(),
            seconds_taken(lambda: libos.shutdown(timeout=2.0)),
        )
        assert not answer.startswith("the child hung") and float(answer) < 2.5, (
            f"a child forked while a parent's thread held an event's lock: its "
            f"LibOS.shutdown(timeout=2): {answer}"
        )
    finally:
        libos.shutdown()
        host.shutdown()
