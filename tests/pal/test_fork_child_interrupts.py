"""A child forked by a thread other than the main one: that thread is the child's main
thread, where its signal handlers run.  The PAL's Ctrl-C deferral must follow it there:
a Ctrl-C that lands in a critical section of the child is raised at the section's end,
not dropped (before, the PAL still took the parent's main thread for the main one, and
an interrupt owed at a section's end was never delivered)."""

from __future__ import annotations

import os
import signal
import threading
import warnings

from libos_support import BOUND
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


def _child(write_fd: int) -> None:  # pragma: no cover - runs in the fork child
    log: list[str] = []
    try:
        try:
            _interrupted_section(log)
            log.append("no KeyboardInterrupt")
        except KeyboardInterrupt:
            log.append("KeyboardInterrupt at the end")
    finally:
        os.write(write_fd, "; ".join(log).encode())
        os._exit(0)


def test_a_ctrl_c_in_a_section_of_a_child_forked_by_another_thread_is_raised() -> None:
    host = pal.open_host("direct")  # installs the PAL's SIGINT handler (main thread)
    read_fd, write_fd = os.pipe()
    pids: list[int] = []

    def fork() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads run
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            _child(write_fd)
        pids.append(pid)

    try:
        thread = threading.Thread(target=fork)
        thread.start()
        thread.join(BOUND)
        assert pids, "the fork did not happen"
        os.close(write_fd)
        write_fd = -1
        answer = os.read(read_fd, 200).decode()
        _, status = os.waitpid(pids[0], 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert answer == "section ran to its end; KeyboardInterrupt at the end", answer
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        host.shutdown()
