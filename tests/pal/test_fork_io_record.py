"""The eventfd I/O record (``_io``) and the closes count (``_closes``) across fork: a
child inherits the parent's records of reads, writes and closes under way on the
parent's other threads, which do not exist in the child.  The child forgets them (the
fork hook, or for a fork made below Python the getpid check of close and shutdown), so
its close and shutdown close its copies of the eventfd and of the registry's epoll."""

from __future__ import annotations

import os
import threading

import pytest

from libos_support import wait_until
from pylibos import pal
from pylibos.pal._identity import EventfdRegistry

from ._pal_support import in_a_child, open_fds
from .test_fork_identity import _libc_fork

BOUND = 10.0


def _reading(host: pal.Host) -> tuple[pal.Handle, threading.Thread]:
    """A blocking eventfd and a thread blocked reading it (recorded in ``_io``), which
    ends with the bytes or a ``PalError`` once the eventfd is written or closed."""
    handle = host.stream_open("eventfd:")  # blocking
    out: list[object] = []

    def reader() -> None:
        try:
            out.append(host.read(handle, 8))
        except pal.PalError as exc:
            out.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert wait_until(lambda: handle in host._io, BOUND)
    return handle, thread


@pytest.mark.parametrize("fork", ["os.fork", "libc fork"])
@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_fork_child_closes_an_eventfd_a_parent_thread_was_reading(kind: str, fork: str) -> None:
    """A parent thread is blocked in a read of an eventfd (recorded in ``_io``) when the
    process forks.  In the child, ``close`` of that handle and then ``shutdown`` close the
    child's copies of the eventfd and of the registry's epoll, as docs/robustness.md
    says (``host.shutdown`` and ``close`` close the child's copies), whether or not
    Python's fork hooks ran."""
    host = pal.open_host(kind)
    handle, thread = _reading(host)
    try:
        registry = host._eventfds
        assert isinstance(registry, EventfdRegistry)

        def child() -> int:
            efd = registry._efd
            host.close(handle)
            fds = open_fds()
            host.shutdown(0.0)
            after = open_fds()
            left = [
                what
                for what, fd, where in (
                    ("eventfd after close", handle._fd, fds),
                    ("eventfd after shutdown", handle._fd, after),
                    ("registry epoll after shutdown", efd, after),
                )
                if fd in where
            ]
            if left:
                os.write(2, f"child left open: {left}\n".encode())
                return 1
            return 0

        assert in_a_child(child, os.fork if fork == "os.fork" else _libc_fork) == 0, (
            "the child's close and shutdown left copies open"
        )
    finally:
        os.eventfd_write(handle._fd, 1)  # wake the reader
        thread.join(BOUND)
        host.shutdown()
    assert not thread.is_alive()


@pytest.mark.parametrize("fork", ["os.fork", "libc fork"])
def test_a_fork_child_releases_an_eventfd_the_parent_closed_under_a_read(fork: str) -> None:
    """The parent closed an eventfd while one of its threads was blocked reading it (the
    release left to that read) and then forked.  The read never ends in the child: the
    child's shutdown releases the handle itself, closing its copy of the eventfd and of
    the registry's epoll."""
    host = pal.open_host("direct")
    handle, thread = _reading(host)
    try:
        host.close(handle)  # left to the read: the descriptor stays open for it
        assert handle.closed and handle._fd in open_fds()
        registry = host._eventfds
        assert isinstance(registry, EventfdRegistry)

        def child() -> int:
            efd = registry._efd
            host.shutdown(0.0)
            left = [fd for fd in (handle._fd, efd) if fd in open_fds()]
            if left:
                os.write(2, f"child left open: {left}\n".encode())
                return 1
            return 0

        status = in_a_child(child, os.fork if fork == "os.fork" else _libc_fork)
        assert status == 0, "the child's shutdown left its copies open"
    finally:
        os.eventfd_write(handle._fd, 1)  # wake the reader, which releases the handle
        thread.join(BOUND)
        host.shutdown()
    assert not thread.is_alive()
