"""A fork child's thread slots: the parent's other host threads are not in the child,
so the slots they held must come back there.  Before, a child forked while the parent's
threads held every slot of an sgx host could start no thread at all (each start waited
out ``slot_timeout`` and failed with NOMEM), and a join of a parent's thread hung."""

from __future__ import annotations

import os
import threading
import warnings

from libos_support import BOUND
from pylibos import pal


def test_a_fork_child_gets_back_the_slots_of_the_parents_threads() -> None:
    host = pal.open_host("sgx", max_threads=3)
    assert isinstance(host, pal.SgxHost)
    go = threading.Event()
    busy = [host.thread_create(go.wait, BOUND) for _ in range(2)]  # every slot taken
    read_fd, write_fd = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads run
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            report = "child failed"
            try:
                joined = all(t.join(0.5) for t in busy)
                ran: list[int] = []
                threads = [host.thread_create(ran.append, i) for i in range(2)]
                started = all(t.join(BOUND) for t in threads)
                report = f"{joined} {started} {sorted(ran)} {host.threads_in_use}"
            except BaseException as exc:
                report = f"{type(exc).__name__}: {exc}"
            finally:
                os.write(write_fd, report.encode())
                os._exit(0)
        os.close(write_fd)
        write_fd = -1
        answer = os.read(read_fd, 500).decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert answer == "True True [0, 1] 1", answer
        assert all(t.is_alive() for t in busy)  # the parent's are untouched
    finally:
        go.set()
        for t in busy:
            t.join(BOUND)
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        host.shutdown()
