"""Defect 3: a handle never acts on a descriptor number the host closed and that now
belongs to something else.

The host closes a descriptor under the PAL (it owns the descriptor table).  The number is
then free, and the next object anyone opens gets it: a socket of the program, or the
channel the LibOS opens to replace the broken one.  Before, handles kept their numbers:
``Host.close`` raised a raw OSError; on eventfd each rebuild closed its own replacement
(a rebuild storm, a full core); and the PAL read the program's socket, then closed it.
Now each handle checks its descriptor's identity before acting, and fails, alone.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

import pytest

from libos_support import BOUND, booted, eventfd_number_taken_over, lowest_free_is, wait_until
from pylibos import pal
from pylibos.libos import LibOS, PollableEvent
from pylibos.pal import EVENT_TOKEN, PalError, PalErrorCode, _identity


@pytest.mark.parametrize("kind", ["sgx", "direct"])
@pytest.mark.parametrize("what", ["eventfd", "raw", "tls"])
def test_close_after_the_host_closed_the_descriptor(kind: str, what: str) -> None:
    with pal.open_host(kind) as host:
        if what == "eventfd":
            handles = [host.stream_open("eventfd:")]
        else:
            handles = list(host.create_pipe(raw=what == "raw"))
        for h in handles:
            os.close(h._fd)  # the host closes it
        for h in handles:
            host.close(h)  # no OSError: the handle is closed, nothing else touched
            assert h.closed
        assert host.open_handles() == []


def _socketpair_at(number: int) -> tuple[socket.socket, socket.socket]:
    """The host closes descriptor ``number`` and the program's next socket gets the
    number: in one step (dup2), so nothing else can take it in between.  Returns a
    connected pair whose first socket has that number."""
    a, b = socket.socketpair()
    try:
        moved = os.dup2(a.fileno(), number, inheritable=False)
    finally:
        a.close()
    return socket.socket(fileno=moved), b


def _assert_refused(
    host: pal.Host, handle: pal.Handle, *, delete: bool = False, says: str | None = None
) -> None:
    """The PAL neither reads, writes (nor deletes) ``handle`` and shows a waiter an error:
    its number now holds an object the PAL did not open."""
    actions: list[Callable[[], object]] = [
        lambda: host.read(handle, 64),
        lambda: host.write(handle, EVENT_TOKEN),
    ]
    if delete:
        actions.append(lambda: host.delete(handle))
    for action in actions:
        with pytest.raises(PalError) as info:
            action()
        assert info.value.code is PalErrorCode.BADHANDLE
        if says is not None:
            assert says in info.value.message
    assert host.streams_wait_events([handle], [pal.WAIT_READ], 0) == [pal.WAIT_ERROR]


def _assert_untouched(mine: socket.socket, theirs: socket.socket) -> None:
    """The program's socket at a number the PAL once had: its data unread, still open."""
    assert mine.recv(64) == b"the program's own data", "the PAL took the data"
    mine.sendall(b"still open")  # not closed by the PAL
    assert theirs.recv(64) == b"still open"


def _hold_the_async_worker(libos: LibOS) -> tuple[PollableEvent, int, threading.Event]:
    """The async worker's event and its read descriptor's number, with the worker kept
    busy (away from the number) until the returned Event is set."""
    assert libos._async is not None
    event = libos._async._event
    number = event.read_handle._fd
    blocker = threading.Event()
    libos.install_async_event(0, lambda: blocker.wait(BOUND))
    assert wait_until(lambda: libos._async is not None and libos._async.pending == 0)
    return event, number, blocker


@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_no_action_on_a_number_the_program_reused(kind: str) -> None:
    """The host closes a raw pipe's read end; the program's next socket gets its number
    and data arrives on it.  The PAL must neither read nor write nor close it."""
    with pal.open_host(kind) as host:
        read, write = host.create_pipe(raw=True)
        mine, theirs = _socketpair_at(read._fd)
        try:
            theirs.sendall(b"the program's own data")
            _assert_refused(host, read, delete=True, says="another object")
            host.close(read)
            host.close(write)
            _assert_untouched(mine, theirs)
        finally:
            mine.close()
            theirs.close()


@pytest.mark.parametrize("events", ["eventfd", "raw"])
def test_a_sleeping_worker_does_not_read_the_programs_socket(events: str) -> None:
    """The host closes the async worker's read descriptor; the program opens a socket at
    once and gets the number.  The worker wakes (or looks again) and must rebuild its
    channel without reading or closing the program's socket."""
    with booted("sgx", events) as libos:
        # The worker is kept away from the number until the program owns it.
        event, number, blocker = _hold_the_async_worker(libos)
        program, peer = _socketpair_at(number)
        try:
            peer.sendall(b"x" * 100)
            blocker.set()
            fired = threading.Event()
            libos.install_async_event(0.01, fired.set)
            assert fired.wait(BOUND)
            assert wait_until(lambda: event.rebuilt >= 1)
            assert program.recv(200) == b"x" * 100, "the PAL read the program's socket"
            program.sendall(b"ok")
            assert peer.recv(2) == b"ok"
        finally:
            program.close()
            peer.close()


def test_eventfd_closed_under_a_sleeper_is_rebuilt_once_not_stormed() -> None:
    """Before: every rebuild took the freed number for its new eventfd and then closed
    the old handle, i.e. its own replacement: ~13,800 rebuilds a second."""
    with booted("sgx", "eventfd") as libos:
        assert libos._async is not None
        event = libos._async._event
        eventfds = libos.host.calls["eventfd"]
        os.close(event.read_handle._fd)
        assert wait_until(lambda: event.rebuilt >= 1)
        fired = threading.Event()
        libos.install_async_event(0.05, fired.set)
        assert fired.wait(BOUND)
        assert event.rebuilt == 1
        assert libos.host.calls["eventfd"] == eventfds + 1
        assert libos._async.host_errors.count == 0


@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_an_eventfd_is_told_from_another_eventfd_at_its_number(kind: str) -> None:
    """All eventfds share one inode; the PAL still must not read, add to or close the
    program's eventfd that took the number of one of its own."""
    with pal.open_host(kind) as host:
        handle = host.stream_open("eventfd:", nonblocking=True)
        program = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            os.eventfd_write(program, 5)
            os.dup2(program, handle._fd, inheritable=False)  # the host closes, it is reused
            _assert_refused(host, handle)
            number = handle._fd
            host.close(handle)
            assert os.eventfd_read(number) == 5, "the PAL touched the program's eventfd"
            os.close(number)  # still open: the PAL did not close it
        finally:
            os.close(program)


@pytest.mark.parametrize("kind", ["sgx", "direct"])
def test_an_eventfd_is_told_from_our_next_eventfd_at_its_number(kind: str) -> None:
    """The host takes an eventfd away, keeping a copy (so the registry's entry for it
    lives on), and the PAL's next eventfd gets the number.  kcmp finds the new file
    among the entries under the number; the old handle must still fail, and neither
    take the new eventfd's tokens, add to it nor close it."""
    with pal.open_host(kind) as host, eventfd_number_taken_over(host) as (old, new):
        host.write(new, EVENT_TOKEN)
        _assert_refused(host, old, says="another object")
        host.close(old)
        assert host.read(new, 8) == EVENT_TOKEN, "the old handle touched the new eventfd"
        host.write(new, EVENT_TOKEN)  # not closed by closing the old handle
        assert host.streams_wait_events([new], [pal.WAIT_READ], 0) == [pal.WAIT_READ]
        host.close(new)


def test_a_worker_does_not_take_the_next_event_at_its_number_for_its_own() -> None:
    """The host takes the async worker's eventfd away, keeping a copy, and the program's
    next pollable event gets the number.  Before: the worker's identity check found the
    new eventfd in the registry and took it for its own, so the worker never rebuilt and
    slept on, drained and would have closed the program's event."""
    with booted("sgx", "eventfd") as libos:
        # The worker is kept away from the number until the program's event has it.
        event, number, blocker = _hold_the_async_worker(libos)
        copy = os.dup(number)  # the host's copy
        try:
            os.close(number)
            program = lowest_free_is(
                number,
                libos.create_pollable_event,
                lambda e: e.destroy(),
                lambda e: e.read_handle._fd,
            )
            try:
                blocker.set()
                fired = threading.Event()
                libos.install_async_event(0.01, fired.set)
                assert fired.wait(BOUND)
                assert wait_until(lambda: event.rebuilt >= 1), "the worker took it for its own"
                assert event.read_handle._fd != number
                program.set()
                assert program.wait(0)
                host = libos.host
                assert host.streams_wait_events([program.read_handle], [pal.WAIT_READ], 0) == [
                    pal.WAIT_READ
                ], "the worker drained the program's event"
            finally:
                program.destroy()
        finally:
            os.close(copy)


@pytest.mark.parametrize("kind", ["sgx", "direct"])
@pytest.mark.parametrize("end", ["close", "shutdown"])
def test_an_epoll_whose_host_descriptor_the_program_reused(kind: str, end: str) -> None:
    """The host closes the host epoll under a LibOS epoll (its edge watch, whose number
    is the epoll's ``fileno()``); the program's next socket gets the number.  Every
    eventfd and epoll shares one anonymous inode, so only the registry tells them apart.
    Neither the program's calls on the epoll nor its close nor the LibOS's shutdown may
    touch the program's socket."""
    with booted(kind) as libos:
        ep = libos.epoll()
        a, b = socket.socketpair()
        number = ep.fileno()
        mine, theirs = _socketpair_at(number)  # the host closes the epoll's descriptor
        try:
            with pytest.raises(OSError):
                ep.register(a.fileno(), select.EPOLLIN | select.EPOLLET)
            theirs.sendall(b"the program's own data")
            if end == "close":
                ep.close()
            else:
                libos.shutdown(timeout=BOUND)
            assert os.fstat(number) is not None  # still open
            assert mine.fileno() == number
            _assert_untouched(mine, theirs)
        finally:
            mine.close()
            theirs.close()
            a.close()
            b.close()
            ep.close()


@pytest.mark.parametrize("kind", ["sgx", "direct"])
@pytest.mark.parametrize("what", ["eventfd", "raw", "tls"])
def test_a_descriptor_closed_just_after_the_waits_check_is_reported_not_raised(
    kind: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait checks a handle's descriptor, finds it sound, and the host closes it at
    once.  The wait must report the handle as WAIT_ERROR, as it does for a handle found
    broken at its check, never raise (before, a second check before the poll raised,
    and the LibOS's async worker took that for a host error of its own).  The
    interleaving is forced: the host's close runs right after the wait's check."""
    real_verify = _identity.verify
    with pal.open_host(kind) as host:
        if what == "eventfd":
            handle = host.stream_open("eventfd:", nonblocking=True)
            other = None
        else:
            handle, other = host.create_pipe(raw=what == "raw")
        closed: list[int] = []

        def check_then_close(h: pal.Handle) -> None:
            real_verify(h)
            if h is handle and not closed:
                closed.append(h._fd)
                os.close(h._fd)  # the host closes the descriptor just after the check

        monkeypatch.setattr(_identity, "verify", check_then_close)
        try:
            ready = host.streams_wait_events([handle], [pal.WAIT_READ], 0)
        finally:
            monkeypatch.setattr(_identity, "verify", real_verify)
        assert closed, "the wait never checked the handle"
        assert ready[0] & pal.WAIT_ERROR
        with pytest.raises(PalError) as err:
            host.read(handle, 1)
        assert err.value.code is PalErrorCode.BADHANDLE
        host.close(handle)
        if other is not None:
            host.close(other)
        assert host.open_handles() == []
