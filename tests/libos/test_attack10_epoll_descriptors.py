"""Which descriptors an epoll takes, and what happens to an entry when the program
closes its descriptor: each case on a ``select.epoll`` and on a LibOS epoll.

Linux's epoll_ctl refuses (EPERM) any file without a poll operation, not only regular
files and directories; and an interest-list entry is a (file, number) pair that lives
as long as the *file* does: closing one number of a file another number still holds
leaves the entry in place, reported under the closed number."""

from __future__ import annotations

import errno
import functools
import gc
import os
import select
from collections.abc import Callable

import pytest

from libos_support import booted, documented, open_fds

IN = select.EPOLLIN


def outcome(call: Callable[[], object]) -> tuple[str, int | None, object]:
    try:
        return ("ok", None, call())
    except Exception as exc:  # the outcome is what is compared
        return (type(exc).__name__, getattr(exc, "errno", None), None)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_without_poll_is_eperm(device: str) -> None:
    # HOLDS since the PAL asks a probe epoll.  Natively register() of /dev/null or
    # /dev/zero is PermissionError(EPERM): those character devices have no poll
    # operation (a daemon's stdin is /dev/null; asyncio's add_reader(sys.stdin) then
    # fails natively).  The LibOS accepted it and reported it always ready.
    fd = os.open(device, os.O_RDWR)
    got = []
    try:
        with booted("sgx", "raw") as libos:
            for make in (select.epoll, libos.epoll):
                ep = make()
                try:
                    got.append((outcome(functools.partial(ep.register, fd))[:2], ep.poll(0)))
                finally:
                    ep.close()
    finally:
        os.close(fd)
    assert got[0] == (("PermissionError", 1), [])
    assert got[1] == got[0]


def test_closing_one_number_of_a_file_another_holds_drops_the_entry_a_documented_difference() -> (
    None
):
    # A documented difference (docs/epoll.md: the LibOS "drops the entry when it finds that
    # number closed ... even while another number (a dup) still holds the file").  Pipe
    # read end r registered for EPOLLIN, r2 = dup(r), close(r), data written: natively
    # poll reports [(r, EPOLLIN)] (the file is still open through r2, so Linux keeps the
    # entry).  The LibOS waits on the number, the host answers POLLNVAL, and the entry is
    # dropped as closed: [].
    results = []
    with booted("sgx", "raw") as libos:
        for make in (select.epoll, libos.epoll):
            r, w = os.pipe()
            ep = make()
            try:
                ep.register(r, IN)
                r2 = os.dup(r)
                os.close(r)
                os.write(w, b"x")
                results.append([(fd == r, ev) for fd, ev in ep.poll(0)])
                os.close(r2)
            finally:
                ep.close()
                os.close(w)
    assert results[0] == [(True, IN)]
    assert results[1] == []
    assert documented("even while another number (a `dup`) still holds the file")


def test_a_number_closed_and_reused_is_not_told_apart_a_documented_difference() -> None:
    # A documented difference (docs/epoll.md: "A descriptor closed and its number reused
    # before then is not told apart from the new one").  A program registers a pipe,
    # closes it without unregister (Linux drops the entry), opens another pipe, which
    # gets the same number, and registers it: natively that works, and before the
    # register a poll reports nothing for the new pipe.  The LibOS reports the new pipe
    # under the old entry ([(r, EPOLLIN)]) and refuses the register with EEXIST.
    results = []
    with booted("sgx", "raw") as libos:
        for make in (select.epoll, libos.epoll):
            ep = make()
            r, w = os.pipe()
            ep.register(r, IN)
            os.close(r)
            r_new, w_new = os.pipe()
            try:
                assert r_new == r
                os.write(w_new, b"x")
                before = ep.poll(0)
                results.append((before, outcome(functools.partial(ep.register, r_new, IN))[:2]))
            finally:
                ep.close()
                for fd in (w, r_new, w_new):
                    os.close(fd)
    assert results[0] == ([], ("ok", None))
    assert results[1] == ([(r_new, IN)], ("FileExistsError", errno.EEXIST))
    assert documented("A descriptor closed and its number reused before then is not told apart")


def test_an_epoll_dropped_without_close_keeps_its_descriptor_a_documented_difference() -> None:
    # A documented difference (docs/epoll.md).  Natively a select.epoll (and so an
    # unclosed selectors.DefaultSelector) closes its descriptor when collected: 50 made
    # and dropped leave no descriptor open.  Each LibOS epoll keeps its host epoll until
    # the LibOS shuts down (EpollTable holds it), which then closes them all.
    with booted("sgx", "raw") as libos:
        counts = []
        for make in (select.epoll, libos.epoll):
            before = len(open_fds())
            for _ in range(50):
                make()  # dropped at once, never closed
            gc.collect()
            counts.append(len(open_fds()) - before)
        before_shutdown = len(open_fds())
    after = len(open_fds())
    assert counts[0] == 0
    assert counts[1] >= 50  # (and the calling thread's event, made on the first)
    assert before_shutdown - after >= 50
    assert documented("An epoll object dropped without `close()` is not closed when it is")
