"""The LibOS's own threads (its async worker and IPC worker, PAL threads) under
``pylibos run``: a program must not see them.  In Gramine these helper threads are
internal to the LibOS, not among the application's threads; here they are threads of
the program's own process and interpreter, seen wherever the program counts its
threads below ``threading``: a known difference, which the README lists under "Running
a program" and these tests hold to."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from run_support import native_and_under


def test_the_libos_workers_are_threads_of_the_process(tmp_path: Path) -> None:
    # A known difference (README, "Running a program"): the LibOS's two workers (its
    # async and IPC workers, started by LibOS.__init__ through libos/_services.py with
    # _thread.start_new_thread) are threads of the program's process.  threading does
    # not list them (enumerate and active_count are python's), but what counts the
    # process's threads below threading does: a program that starts none has, natively,
    # 1 entry in sys._current_frames(), 1 in /proc/self/task and _thread._count() 0;
    # under pylibos run 3, 3 and 2 (and faulthandler's dump of all threads shows them).
    (tmp_path / "count.py").write_text(
        "import _thread, os, sys, threading\n"
        "print(len(sys._current_frames()), len(os.listdir('/proc/self/task')),"
        " _thread._count(), threading.active_count(), len(threading.enumerate()))\n"
    )
    native, under = native_and_under(tmp_path, ["count.py"])
    assert native == (0, "1 1 0 1 1\n", "")
    assert under == (0, "3 3 2 1 1\n", "")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the warning exists from 3.12 on")
def test_fork_in_a_single_threaded_program_warns_of_the_libos_workers(tmp_path: Path) -> None:
    # A known difference (README, "Running a program"), from 3.12 on (seen on 3.12.1):
    # CPython counts the process's threads when the program forks, the LibOS's two
    # workers among them, so a program with no thread of its own that calls os.fork()
    # gets, under pylibos run only, "DeprecationWarning: This process (pid=...) is
    # multi-threaded, use of fork() may lead to deadlocks in the child."  The fork
    # itself works as natively.
    (tmp_path / "fk.py").write_text(
        "import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n"
        "os.waitpid(pid, 0)\nprint('forked')\n"
    )
    native, under = native_and_under(tmp_path, ["fk.py"])
    assert native == (0, "forked\n", "")
    assert under[:2] == native[:2]
    assert "is multi-threaded, use of fork() may lead to deadlocks" in under[2]
