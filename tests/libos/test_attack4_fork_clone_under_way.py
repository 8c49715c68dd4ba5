"""A fork while another thread's clone is under way: in the clone path's wait for a
thread slot, its thread in the table, its host thread not started.

The child's copy of the LibOS forgets the parent's threads (``_forget_other_threads``):
all but the LibOS's main thread and the forking thread's own.  Before, it forgot only
those whose host thread runs (``_pal`` set), and the entry of a clone under way on a
parent's thread stayed in the child's table: ``threads()`` listed (and the IPC thread
list reported) a thread that does not exist in the child and never will.
"""

from __future__ import annotations

import threading

from libos_support import BOUND, in_fork_child, wait_until, waits_for_a_thread_slot
from pylibos.libos import LibOS, LibOSThread
from pylibos.pal import SgxHost, open_host


def _noop() -> None:
    pass


def test_a_fork_child_does_not_list_a_parents_clone_under_way() -> None:
    host = open_host("sgx", max_threads=4)  # main, the two workers, and one
    assert isinstance(host, SgxHost)
    host.slot_timeout = BOUND
    libos = LibOS(host, "raw")
    go = threading.Event()
    made: list[LibOSThread | BaseException] = []
    cloner: threading.Thread | None = None
    try:
        holder = libos.clone(go.wait, BOUND)  # the last slot
        made.append(holder)
        assert host.threads_in_use == host.max_threads
        before = {t.tid for t in libos.threads()}

        def clone() -> None:
            try:
                made.append(libos.clone(_noop))
            except BaseException as exc:  # pragma: no cover - reported below
                made.append(exc)

        cloner = threading.Thread(target=clone)
        cloner.start()
        assert wait_until(lambda: waits_for_a_thread_slot(cloner.ident))  # in its wait for a slot

        def child() -> str:  # pragma: no cover - runs in the fork child
            extra = sorted(t.tid for t in libos.threads() if t.tid not in before)
            return f"extra={extra} in_use={host.threads_in_use} live={host.live_threads()}"

        report = in_fork_child(child)
        assert report == "extra=[] in_use=1 live=[]", report
    finally:
        go.set()
        if cloner is not None:
            cloner.join(BOUND)
        for thread in made:
            assert isinstance(thread, LibOSThread), thread
            assert thread.join(BOUND)
        libos.shutdown()
        host.shutdown()
