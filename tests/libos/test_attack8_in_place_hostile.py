"""Handles and events built in place (bc73bc3) keep every check an ``__init__``-made one
had: a host that closes a thread's eventfd and hands its number to an eventfd of its
own gets no write into it (kcmp through the registry), the event moves to
a new channel, and a fork child's host still ends its threads through its own host."""

from __future__ import annotations

import os
import threading

import pytest

from libos_support import BOUND, in_fork_child, open_fds, wait_until
from pylibos.libos import LibOS
from pylibos.pal import open_host


@pytest.mark.parametrize("pool", [False, True], ids=["fresh", "pool"])
def test_a_number_the_host_reused_gets_no_wakeup(pool: bool) -> None:
    fds = open_fds()
    host = open_host("sgx")
    libos = LibOS(host, "eventfd", pool)
    go = threading.Event()
    try:
        thread = libos.clone(go.wait, BOUND)
        event = thread.event
        old = event.read_handle
        assert old._ident is host._eventfds  # kcmp through the registry
        os.close(old._fd)
        theirs = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            assert theirs == old._fd
            event.set()  # the host's eventfd at our number: never written
            with pytest.raises(BlockingIOError):
                os.eventfd_read(theirs)
            assert event.read_handle is not old and event.rebuilt == 1
            assert event.wait(BOUND)
            go.set()
            assert thread.join(BOUND)
        finally:
            os.close(theirs)
    finally:
        go.set()
        libos.shutdown()
        host.shutdown()
    assert wait_until(lambda: open_fds() <= fds)


def test_a_fork_child_ends_its_threads_through_its_own_host() -> None:
    host = open_host("sgx")
    libos = LibOS(host, "eventfd", True)
    try:

        def child() -> str:  # pragma: no cover - runs in the fork child
            t = libos.clone(lambda: None)
            if not t.join(5.0):
                return "the child's thread did not end"
            pal = t._pal
            assert pal is not None
            if getattr(pal._on_exit, "__self__", None) is not host or pal in host._threads:
                return "the thread ended through another host's exit work"
            if libos.thread_by_tid(t.tid) is not None:
                return "the thread is still in the child's table"
            libos.shutdown()
            host.shutdown()
            return "ok"

        assert in_fork_child(child) == "ok"
    finally:
        libos.shutdown()
        host.shutdown()
