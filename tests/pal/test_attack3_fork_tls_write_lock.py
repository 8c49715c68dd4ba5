"""A child forked while another thread of the parent is writing on an sgx pipe (a
``set`` of the main thread's event, whose TLS write end it holds under the handle's
``_write_lock`` for the host call).  The fork hooks make the event's own lock anew (and
the PAL's host, ledger, edge and deferral locks), but not a pipe handle's
``_write_lock``/``_read_lock``/``_tls_lock``.  In the child the event reads as set with
no token in its channel; once the child clears it, the child's next ``set`` (a thread
waking the main one, an epoll waking its waiter) waits for ever for a write lock no
thread of the child will release, and it does so holding the event's lock, so every
later use of the event (``destroy`` in shutdown included) waits too.

The parent's thread is held inside the lock by a line tracer on its own frames (a real
thread, stopped at one line as the scheduler may stop it)."""

from __future__ import annotations

from libos_support import fork_while_held, seconds_taken, started_thread
from pylibos import pal
from pylibos.libos import LibOS
from pylibos.pal._host import Host


def test_a_child_forked_while_a_thread_writes_an_event_pipe_can_set_that_event() -> None:
    host = pal.open_host("sgx", max_threads=8)
    libos = LibOS(host, "pipe")
    main_event = libos.current_thread().event
    write_end = main_event._write

    def clear_set_clear() -> None:  # pragma: no cover - runs in the fork child
        main_event.clear()
        main_event.set()
        main_event.clear()

    try:
        answer = fork_while_held(
            started_thread,
            main_event.set,
            Host.write.__code__,
            lambda frame: write_end._write_lock.locked(),
            seconds_taken(clear_set_clear),
        )
        assert not answer.startswith("the child hung") and float(answer) < 2.0, (
            f"a child forked while a parent's thread wrote on an event's TLS pipe: "
            f"clear, set, clear of that event in the child: {answer}"
        )
    finally:
        libos.shutdown()
        host.shutdown()
