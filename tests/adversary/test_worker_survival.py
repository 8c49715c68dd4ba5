"""Defect 2: host-caused errors do not kill the LibOS's workers or reach the program as
EBADF.

Before: a descriptor closed under the PAL, a cut while the process is out of
descriptors, or a cut racing a legitimate ``set`` made the async worker return (later
timers were accepted and never fired) and the IPC worker die with an uncaught OSError;
in the race, ``wait`` and ``epoll.poll`` raised EBADF to the program.  Now a worker
records the error, pauses (bounded), and goes on; only its stop flag ends it.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from libos_support import BOUND, booted, descriptors_exhausted, spying, wait_until
from pylibos.libos import ECHO, LibOS, PollableEvent
from pylibos.libos._async import AsyncWorker
from pylibos.libos._ipc import IpcWorker
from pylibos.pal import Handle

from .hostile import HostileHost


def _alive(libos: LibOS) -> None:
    """Both workers are running and doing their work."""
    assert libos._async is not None and libos._async.thread is not None
    assert libos._async.thread.is_alive(), "the async worker died"
    fired = threading.Event()
    libos.install_async_event(0.01, fired.set)
    assert fired.wait(BOUND), "a timer installed after the attack never fired"
    ipc = libos.ipc_worker
    assert ipc.thread is not None and ipc.thread.is_alive(), "the IPC worker died"
    with libos.ipc_connect(libos.ipc_name) as client:
        assert client.request(ECHO, b"alive", timeout=BOUND) == b"alive"


def _cut(hostile: HostileHost, event: PollableEvent, stand_in: int | None = None) -> bool:
    """The host shuts the channel's write end down (a copy of it, in the host); an
    eventfd it takes away: it keeps a copy and closes the PAL's descriptor, or, given a
    ``stand_in`` descriptor, puts a copy of that at the number in the same step (dup2),
    so that the number never comes free (True then: the stand-in is the caller's to
    close)."""
    write = event._write
    copy = hostile.grab(write._fd)
    if write._sock is not None:
        hostile.do("shutdown", copy)
    elif stand_in is not None:
        os.dup2(stand_in, write._fd, inheritable=False)
        return True
    else:
        os.close(write._fd)
    return False


@pytest.fixture(params=[("sgx", "raw"), ("sgx", "pipe"), ("sgx", "eventfd"), ("direct", "raw")])
def libos(request: pytest.FixtureRequest) -> Iterator[LibOS]:
    with booted(*request.param) as booted_libos:
        yield booted_libos


def test_async_worker_survives_its_descriptor_closed_under_the_pal(libos: LibOS) -> None:
    assert libos._async is not None
    event = libos._async._event
    os.close(event.read_handle._fd)  # the host closes the descriptor the worker sleeps on
    assert wait_until(lambda: event.rebuilt >= 1), "the worker never noticed"
    _alive(libos)


def test_ipc_worker_survives_its_listener_closed_under_the_pal(libos: LibOS) -> None:
    ipc = libos.ipc_worker
    assert ipc._server is not None
    os.close(ipc._server._fd)  # the host closes the listener
    assert wait_until(lambda: ipc.relistened >= 1), "the worker never listened again"
    _alive(libos)


def test_ipc_worker_survives_its_listener_shut_down(hostile: HostileHost) -> None:
    with booted("sgx", "raw") as libos:
        ipc = libos.ipc_worker
        assert ipc._server is not None
        copy = hostile.grab(ipc._server._fd)
        hostile.do("shutdown", copy)
        # The host's copy keeps the old listener, and with it the name: the worker cannot
        # listen again yet.  It stays alive, keeps its timers, and tries again, slowly.
        assert wait_until(lambda: ipc.host_errors.count >= 1)
        assert ipc.thread is not None and ipc.thread.is_alive()
        fired = threading.Event()
        libos.install_async_event(0.01, fired.set)
        assert fired.wait(BOUND)
        hostile.do("close", copy)  # the host lets the name go
        assert wait_until(lambda: ipc.relistened >= 1), "the worker never listened again"
        _alive(libos)


@pytest.mark.parametrize("events", ["raw", "eventfd"])
def test_workers_survive_a_cut_while_out_of_descriptors(hostile: HostileHost, events: str) -> None:
    """The host cuts both workers' channels while the process has no descriptor left:
    no new channel can be made.  The workers keep trying, slowly, and recover once
    descriptors are back; a timer installed meanwhile fires."""
    # Taking an eventfd away must not free its number, even for a moment: a sleeper that
    # looks again (within RECHECK_S) while it is free makes its new channel there, and
    # never meets the shortage.  So the host puts another file at the number in the
    # same step.
    stand_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with booted("sgx", events) as libos:
            assert libos._async is not None
            workers: list[AsyncWorker | IpcWorker] = [libos._async, libos.ipc_worker]
            taken: list[int] = []
            try:
                _starved(hostile, libos, workers, stand_in, taken)
            finally:
                for number in taken:
                    os.close(number)  # the host's stand-ins (the PAL let go of them)
    finally:
        os.close(stand_in)


def _starved(
    hostile: HostileHost,
    libos: LibOS,
    workers: list[AsyncWorker | IpcWorker],
    stand_in: int,
    taken: list[int],
) -> None:
    fired = threading.Event()
    with descriptors_exhausted():
        for worker in workers:
            number = worker._event._write._fd
            if _cut(hostile, worker._event, stand_in):
                taken.append(number)
        assert wait_until(lambda: all(w.host_errors.count >= 1 for w in workers))
        listens = libos.host.calls["listen"] + libos.host.calls["eventfd"]
        libos.install_async_event(0.05, fired.set)
        # Retries back off: at most a few per worker while starved.
        threading.Event().wait(0.3)  # a window to count retries in, not a sync point
        retries = libos.host.calls["listen"] + libos.host.calls["eventfd"] - listens
        assert retries <= 40, f"{retries} channel rebuilds in 0.3 s: the workers spin"
    assert fired.wait(BOUND), "a timer installed while starved never fired"
    assert wait_until(lambda: all(w._event.rebuilt >= 1 for w in workers))
    _alive(libos)


@pytest.mark.parametrize("events", ["raw", "pipe"])
def test_wait_survives_a_cut_racing_a_set(hostile: HostileHost, events: str) -> None:
    """Just before a waiter's host call, the host cuts the channel and a legitimate set
    replaces it (closing the old handles): the waiter must see the set, not EBADF."""
    with booted("sgx", events) as libos:
        event = libos.create_pollable_event()
        try:
            raced = threading.Event()

            def race(handles: list[Handle]) -> None:
                if event.read_handle in handles and not raced.is_set():
                    raced.set()
                    _cut(hostile, event)
                    event.set()  # the write fails on the cut channel: rebuilt

            with spying(libos.host) as spy:
                spy.before = race
                assert event.wait(BOUND)
            assert raced.is_set() and event.rebuilt >= 1
        finally:
            event.destroy()


@pytest.mark.parametrize("events", ["raw", "pipe"])
def test_epoll_survives_a_cut_racing_a_set(hostile: HostileHost, events: str) -> None:
    with booted("sgx", events) as libos:
        a, b = socket.socketpair()
        ep = libos.epoll()
        try:
            ep.register(a.fileno(), select.EPOLLIN)
            event = libos.current_thread().event
            raced = threading.Event()

            def race(handles: list[Handle]) -> None:
                if event.read_handle in handles and not raced.is_set():
                    raced.set()
                    _cut(hostile, event)
                    event.set()
                    b.send(b"x")  # so that the poll has something to report

            with spying(libos.host) as spy:
                spy.before = race
                assert ep.poll(BOUND) == [(a.fileno(), select.EPOLLIN)]
            assert raced.is_set() and event.rebuilt >= 1
        finally:
            ep.close()
            a.close()
            b.close()
