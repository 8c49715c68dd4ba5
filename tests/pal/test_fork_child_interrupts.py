"""A child forked by a thread other than the main one: that thread is the child's main
thread, where its signal handlers run.  The PAL's Ctrl-C deferral must follow it there:
a Ctrl-C that lands in a critical section of the child is raised at the section's end,
not dropped (before, the PAL still took the parent's main thread for the main one, and
an interrupt owed at a section's end was never delivered)."""

from __future__ import annotations

import os
import signal
import threading

from libos_support import BOUND, in_fork_child
from pylibos import pal
from pylibos.pal import critical_deliver, critical_owed, marks_critical_sections


@marks_critical_sections
def _interrupted_section(log: list[str]) -> None:
    _pal_critical = True
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at a bytecode boundary, here: deferred
            pass
        log.append("section ran to its end")
    finally:
        _pal_critical = False
        if critical_owed[0]:
            critical_deliver()


def _child() -> str:  # pragma: no cover - runs in the fork child
    log: list[str] = []
    try:
        _interrupted_section(log)
        log.append("no KeyboardInterrupt")
    except KeyboardInterrupt:
        log.append("KeyboardInterrupt at the end")
    return "; ".join(log)


def test_a_ctrl_c_in_a_section_of_a_child_forked_by_another_thread_is_raised() -> None:
    host = pal.open_host("direct")  # installs the PAL's SIGINT handler (main thread)
    answers: list[str] = []
    try:
        thread = threading.Thread(target=lambda: answers.append(in_fork_child(_child)))
        thread.start()
        thread.join(BOUND + 1)
        assert answers == ["section ran to its end; KeyboardInterrupt at the end"], answers
    finally:
        host.shutdown()
