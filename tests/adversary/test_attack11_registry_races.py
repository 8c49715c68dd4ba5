"""The eventfd registry's replacement raced: two opens finding it gone at once, a
shutdown while an open replaces it, and a host that closes every new registry at once."""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

from libos_support import (
    BOUND,
    descriptors_exhausted,
    eventfd_registry,
    held_where,
    in_fork_child,
    is_open,
    open_fds,
    run_traced,
)
from pylibos import pal
from pylibos.pal import _identity
from pylibos.pal._core import HostCore
from pylibos.pal._identity import EventfdRegistry

_INSTEAD_OF = HostCore._registry_instead_of.__code__


def _lose_registry(host: pal.Host) -> int:
    """Open and close an eventfd (the registry is made), have the host close the
    registry's epoll and the program's next file take its number; that number."""
    first = host.stream_open("eventfd:", nonblocking=True)
    number = eventfd_registry(first)._efd
    host.close(first)
    os.close(number)
    mine = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    assert mine == number, "the lowest free number should be the registry's"
    return mine


def _open_in_thread(host: pal.Host) -> tuple[threading.Thread, list[object], threading.Event]:
    """An eventfd open on a thread, held at the first line of ``_registry_instead_of``
    (it found the registry gone) until the returned event is set; its outcome (a handle
    or the exception) goes in the list."""
    tracer, held, go = held_where(_INSTEAD_OF, lambda frame: True)
    outcome: list[object] = []

    def work() -> None:
        try:
            outcome.append(host.stream_open("eventfd:", nonblocking=True))
        except (pal.PalError, pal.ShutDownError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run_traced, args=(work, tracer))
    thread.start()
    assert held.wait(BOUND), "the open never found the registry gone"
    return thread, outcome, go


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_two_opens_finding_the_registry_gone_at_once_make_one_replacement(kind: str) -> None:
    """Held (added coverage): one open holds after finding the registry gone; another
    finds it gone too and replaces it; the first then takes that replacement.  One new
    registry, one epoll stranded, both opens work, nothing held by nobody."""
    with pal.open_host(kind) as host:
        mine = _lose_registry(host)
        try:
            lost = host._eventfds
            stranded = len(_identity._STRANDED)
            thread, outcome, go = _open_in_thread(host)
            try:
                second = host.stream_open("eventfd:", nonblocking=True)
            finally:
                go.set()
                thread.join(BOUND)
            assert not thread.is_alive()
            first = outcome[0]
            assert isinstance(first, pal.Handle), first
            registry = host._eventfds
            assert isinstance(registry, EventfdRegistry) and registry is not lost
            assert first._ident is registry and second._ident is registry
            assert len(_identity._STRANDED) == stranded + 1
            for handle in (first, second):
                host.write(handle, pal.EVENT_TOKEN)
                assert host.read(handle, 8) == pal.EVENT_TOKEN
                host.close(handle)
        finally:
            os.close(mine)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_shutdown_while_an_open_replaces_the_registry_leaves_the_programs_file(
    kind: str,
) -> None:
    # An open found the registry gone (its number closed by the host, now the program's
    # file) and is about to replace it; shutdown runs first: ``_retire_eventfds`` keeps
    # the gone registry in ``_retired`` and ``_retire_registry`` closes it
    # (select.epoll.close on its number): the PROGRAM's file is closed, though the open
    # in flight had just found that number no longer the registry's.  The open itself
    # fails with ShutDownError and gives its eventfd back (held).  The retire should
    # leave a registry that is gone alone (ask ``gone()``, abandon it), never close its
    # number (src/pylibos/pal/_host.py: _retire_eventfds / _retire_registry).
    host = pal.open_host(kind)
    mine = -1
    try:
        mine = _lose_registry(host)
        before = open_fds()
        thread, outcome, go = _open_in_thread(host)
        try:
            host.shutdown()
        finally:
            go.set()
            thread.join(BOUND)
        assert not thread.is_alive()
        assert isinstance(outcome[0], pal.ShutDownError), outcome
        assert open_fds() <= before, "the open in flight left a descriptor behind"
        assert is_open(mine), "shutdown closed the program's file at the registry's number"
    finally:
        host.shutdown()
        with contextlib.suppress(OSError):
            os.close(mine)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_host_closing_every_new_registry_at_once_costs_nothing_per_round(kind: str) -> None:
    """Held (added coverage): the host closes each new registry's epoll as soon as an
    eventfd open made it, 50 times over: every open works, with identity on, and the
    descriptors held stay the same (each lost registry's epoll object is kept, one
    per round, its number never closed)."""
    with pal.open_host(kind) as host:
        first = host.stream_open("eventfd:", nonblocking=True)
        eventfd_registry(first)
        host.close(first)
        counts = set()
        stranded = len(_identity._STRANDED)
        for _ in range(50):
            registry = host._eventfds
            assert isinstance(registry, EventfdRegistry)
            os.close(registry._efd)  # the host closes it
            handle = host.stream_open("eventfd:", nonblocking=True)
            assert handle._ident is host._eventfds and host._eventfds is not registry
            host.write(handle, pal.EVENT_TOKEN)
            host.close(handle)
            counts.add(len(open_fds()))
        assert len(counts) == 1, f"descriptors held grew: {sorted(counts)}"
        assert len(_identity._STRANDED) == stranded + 50


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_fork_child_that_closes_the_registry_replaces_its_own(kind: str) -> None:
    """Held (added coverage): a fork child closes its copy of the registry's epoll (as a
    program that forks, then closes every descriptor it does not know of, does) and
    opens an eventfd: the child's registry is replaced there, the open works with
    identity on, and the parent's registry, its own copy, is untouched."""
    with pal.open_host(kind) as host:
        first = host.stream_open("eventfd:", nonblocking=True)
        registry = eventfd_registry(first)

        def child() -> str:  # pragma: no cover - runs in the fork child
            os.close(registry._efd)
            handle = host.stream_open("eventfd:", nonblocking=True)
            now = host._eventfds
            host.write(handle, pal.EVENT_TOKEN)
            read = host.read(handle, 8)
            host.close(handle)
            replaced = isinstance(now, EventfdRegistry) and now is not registry
            return f"{replaced} {handle._ident is now} {read == pal.EVENT_TOKEN}"

        assert in_fork_child(child) == "True True True"
        assert host._eventfds is registry and is_open(registry._efd)
        again = host.stream_open("eventfd:", nonblocking=True)
        assert again._ident is registry
        host.write(first, pal.EVENT_TOKEN)
        assert host.read(first, 8) == pal.EVENT_TOKEN
        host.close(again)
        host.close(first)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_replacement_refused_a_descriptor_fails_that_open_only(kind: str) -> None:
    """Held (added coverage): the registry is found gone when no descriptor is left for
    its replacement: that open fails (TOOMANY) and gives its eventfd back, and the next
    open, once a descriptor is free, makes a registry and works with identity on."""
    with pal.open_host(kind) as host:
        first = host.stream_open("eventfd:", nonblocking=True)
        lost = eventfd_registry(first)
        host.close(first)
        os.close(lost._efd)  # the host closes the registry's epoll
        before = open_fds()
        with descriptors_exhausted(1), pytest.raises(pal.PalError) as info:
            host.stream_open("eventfd:", nonblocking=True)
        assert info.value.code is pal.PalErrorCode.TOOMANY, info.value
        assert open_fds() == before
        again = host.stream_open("eventfd:", nonblocking=True)
        registry = host._eventfds
        assert isinstance(registry, EventfdRegistry) and registry is not lost
        assert again._ident is registry
        host.write(again, pal.EVENT_TOKEN)
        host.close(again)
