"""A host that adds its own file to the host epoll under a LibOS epoll (the edge watch).

The host owns the descriptor table: it can copy the watch's epoll and ``epoll_ctl`` into
it a file of its own, level-triggered and always ready, under the number of a descriptor
the program has registered edge-triggered, or under any number.  The watch then stays
readable for good, and ``edge_watch_take`` reports the host's readiness as the
program's: the program's ``poll`` returns at once, again and again, with an ``EPOLLIN``
that is not there.  The PAL's removal of an unknown number (``unregister(fd)``) cannot
reach the host's entry: it names the file at that number in this process.

Since the PAL checks every reported number with ``kcmp(KCMP_EPOLL_TFD)`` over all the
entries under it (and takes an unknown number out, or finds it cannot), and makes the
watch anew on the same number (``dup2`` of a new epoll, every handle added again) when
an entry is the host's.
"""

from __future__ import annotations

import os
import select
import socket
import time
import warnings

import pytest

from libos_support import booted

BOUND = 20.0


@pytest.mark.parametrize("number", ["the program's", "a free one"])
def test_a_forged_entry_in_the_edge_watch_neither_lies_nor_spins(number: str) -> None:
    with booted("sgx", "raw") as libos:
        ep = libos.epoll()
        a, b = socket.socketpair()
        a.setblocking(False)
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        try:
            ep.register(a.fileno(), select.EPOLLIN | select.EPOLLET)
            free = os.dup(done_w)
            os.close(free)  # a number closed here
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads run
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the host, in its own process
                try:
                    forged = os.eventfd(1)  # always readable
                    at = a.fileno() if number == "the program's" else free
                    os.dup2(forged, at)  # its own file, under that number
                    watch = select.epoll.fromfd(os.dup(ep.fileno()))
                    watch.register(at, select.EPOLLIN)  # level-triggered
                    os.write(ready_w, b"x")
                    os.read(done_r, 1)  # keeps its file open until the test is done
                finally:
                    os._exit(0)
            try:
                assert os.read(ready_r, 1) == b"x"
                calls = libos.host.calls_total
                got = ep.poll(0.3)
                spent = libos.host.calls_total - calls
                assert got == [], "epoll reported an event that is not there"
                assert spent < 20, f"{spent} host calls in one 0.3 s poll: a spin"
                b.send(b"x")  # a real edge is still reported
                assert ep.poll(BOUND) == [(a.fileno(), select.EPOLLIN)]
            finally:
                os.write(done_w, b"x")
                deadline = time.monotonic() + BOUND
                while not os.waitpid(pid, os.WNOHANG)[0]:
                    assert time.monotonic() < deadline, "the host process did not end"
                    time.sleep(0.01)  # polling a child's exit: no wait with a timeout
        finally:
            for fd in (ready_r, ready_w, done_r, done_w):
                os.close(fd)
            ep.close()
            a.close()
            b.close()
