"""The eventfd registry's replacement (``HostCore._registered_again`` and
``_registry_instead_of``), played against the worst moments: a shutdown that finds the
registry's number taken by the program's own file, an open that read the registry before
it was replaced, a Ctrl-C at every line of the replacement, and a host that closes each
new registry again at once."""

from __future__ import annotations

import contextlib
import gc
import os
import select
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from libos_support import eventfd_registry, is_open, open_fds, sigint_at_line
from pylibos import pal
from pylibos.pal._core import HostCore
from pylibos.pal._identity import EventfdRegistry


def _held_by_nobody(host: pal.Host, before: set[int]) -> set[int]:
    """Descriptors opened since ``before`` that neither a handle of ``host`` nor its
    current registry holds."""
    known = {h._fd for h in list(host._handles)}
    registry = host._eventfds
    if isinstance(registry, EventfdRegistry):
        known.add(registry._efd)
    return open_fds() - before - known


@contextlib.contextmanager
def _closing_strays(before: set[int]) -> Iterator[None]:
    """Close, at the end, whatever a failing test left open since ``before`` (so the
    module's descriptor check reports the test's own finding, not its leftovers)."""
    try:
        yield
    finally:
        for fd in open_fds() - before:
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_shutdown_leaves_the_programs_file_at_a_lost_registrys_number(kind: str) -> None:
    # The host closes the registry's epoll; the program's next file gets its number; no
    # eventfd is opened after, so no refused watch ever finds the registry gone.
    # shutdown's _retire_registry then closes the registry (EventfdRegistry.close:
    # select.epoll.close on the number), closing the PROGRAM's file.  docs/security.md
    # row 7: the PAL never acts on a descriptor the host closed and whose number now
    # belongs to another object.  It should ask ``gone()`` (as a refused watch does)
    # and abandon rather than close (src/pylibos/pal/_host.py: _retire_registry).
    before = open_fds()
    with _closing_strays(before):
        host = pal.open_host(kind)
        try:
            e = host.stream_open("eventfd:", nonblocking=True)
            number = eventfd_registry(e)._efd
            host.close(e)
            os.close(number)  # the host closes the registry's epoll
            mine = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            assert mine == number, "the lowest free number should be the registry's"
        finally:
            host.shutdown()
        assert is_open(mine), "shutdown closed the program's file at the registry's number"
        os.close(mine)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_an_open_that_read_the_registry_before_its_replacement_succeeds(kind: str) -> None:
    # An eventfd open reads ``_eventfds`` (registry R1), then makes its eventfd.  Before
    # it registers it, another open finds R1 gone (its number closed by the host and
    # taken by the program's file) and replaces it by R2; the program then closes that
    # file and makes its own epoll, which gets R1's old number.  The first open's watch
    # is refused by R1's ``_refused_gate`` (BADHANDLE); ``_registered_again`` asks
    # ``R1.gone()``, which sees an epoll at the number and says no, so ``_unmade`` takes
    # the BADHANDLE for "the registry found the descriptor closed" and ``_untrack``s it:
    # the open failed and its eventfd leaked (held by no handle, never closed).  It
    # should register with R2 (R1 is abandoned: no longer the host's registry, whatever
    # lies at its old number) and succeed, leaking nothing
    # (src/pylibos/pal/_core.py: _registered_again; _eventfd.py: _open_eventfd).
    before = open_fds()
    with _closing_strays(before):
        host = pal.open_host(kind)
        base = open_fds()
        program_epoll: select.epoll | None = None
        made: list[pal.Handle] = []
        started = False
        try:
            first = host.stream_open("eventfd:", nonblocking=True)
            made.append(first)
            lost = eventfd_registry(first)
            number = lost._efd
            real_call = host._call

            def replaced_meanwhile(
                kind_: str, where: str, fn: Callable[..., Any], *args: Any
            ) -> Any:
                nonlocal program_epoll, started
                if kind_ == "eventfd" and not started:
                    started = True
                    os.close(number)  # the host closes the registry's epoll
                    mine = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                    assert mine == number
                    made.append(host.stream_open("eventfd:", nonblocking=True))
                    assert host._eventfds is not lost, "the other open replaced it"
                    os.close(mine)
                    program_epoll = select.epoll()  # the program's own, at the old number
                    assert program_epoll.fileno() == number
                return real_call(kind_, where, fn, *args)

            host._call = replaced_meanwhile  # type: ignore[method-assign,assignment]
            try:
                outcome: pal.Handle | pal.PalError
                try:
                    outcome = host.stream_open("eventfd:", nonblocking=True)
                except pal.PalError as exc:
                    outcome = exc
            finally:
                del host._call
            strays = _held_by_nobody(host, base) - {number}
            assert not strays, f"descriptors held by no handle: {strays} ({outcome})"
            assert isinstance(outcome, pal.Handle), f"the open failed: {outcome}"
            assert outcome._ident is host._eventfds
            host.write(outcome, pal.EVENT_TOKEN)
            assert host.read(outcome, 8) == pal.EVENT_TOKEN
        finally:
            host.shutdown()
            assert program_epoll is None or is_open(number)
            if program_epoll is not None:
                program_epoll.close()
            for handle in made[:1]:  # checked against the lost registry: left alone
                with contextlib.suppress(OSError):
                    os.close(handle._fd)


_LINES = [HostCore._registered_again.__code__, HostCore._registry_instead_of.__code__]


@pytest.mark.parametrize("code", _LINES, ids=lambda c: c.co_name)
@pytest.mark.parametrize("opening", ["eventfd", "edge-watch"])
def test_a_ctrl_c_at_every_line_of_the_replacement_loses_nothing(opening: str, code: Any) -> None:
    """Held (added coverage): a Ctrl-C (the PAL's own SIGINT handler) at every line of
    the replacement, for an eventfd open (a critical section: the interrupt waits) and
    an edge watch's (none): no descriptor held by nobody, the lock free, the host opens
    eventfds after, with identity on."""
    before = open_fds()
    with _closing_strays(before):
        host = pal.open_host("direct")
        lost_handles: list[pal.Handle] = []
        try:
            fired_lines: set[int] = set()
            for n in range(1, 60):
                first = host.stream_open("eventfd:", nonblocking=True)
                registry = eventfd_registry(first)
                lost_handles.append(first)
                host.close(first)
                os.close(registry._efd)  # the host closes the registry's epoll
                # The program's next file takes its number (not an epoll: see
                # test_an_edge_watch_opens_after_the_registrys_epoll_was_closed).
                mine = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                if mine != registry._efd:
                    os.dup2(mine, registry._efd, inheritable=False)
                    os.close(mine)
                    mine = registry._efd
                base = open_fds()
                fired: list[int] = []
                got: pal.Handle | None = None
                sys.settrace(sigint_at_line(code, n, fired))
                try:
                    if opening == "eventfd":
                        got = host.stream_open("eventfd:", nonblocking=True)
                    else:
                        got = host.edge_watch_open()
                except KeyboardInterrupt:
                    pass
                finally:
                    sys.settrace(None)
                assert not host._lock.locked(), f"lock left held (line {fired})"
                assert not _held_by_nobody(host, base | before), f"lost at line {fired}"
                if got is not None:
                    host.close(got)
                after = host.stream_open("eventfd:", nonblocking=True)
                assert isinstance(after._ident, EventfdRegistry)
                assert after._ident._gate.__name__ != "_refused_gate"
                host.write(after, pal.EVENT_TOKEN)
                host.close(after)
                os.close(mine)
                if not fired:
                    break
                fired_lines.update(fired)
            assert len(fired_lines) >= 3, fired_lines
        finally:
            host.shutdown()


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_an_edge_watch_opens_after_the_registrys_epoll_was_closed(kind: str) -> None:
    # The host (or a daemon closing every descriptor it does not know of) closes the
    # registry's epoll at N.  The next edge watch (the host epoll under a LibOS epoll's
    # edge-triggered entries) is an epoll, made at the lowest free number: N.  ``_track``
    # asks the registry to watch it: epoll_ctl(N, ADD, N), an epoll adding itself, EINVAL
    # (DENIED); ``_registered_again`` asks ``gone()``, which sees an epoll at N (the
    # watch's own) and takes it for the registry, so the open failed (DENIED), and every
    # edge watch open after fails the same way for as long as N is the lowest free
    # number: one closed descriptor stops edge watches for good, which the replacement
    # exists to prevent.  It should find the registry gone (the epoll at N is the handle
    # just opened, not the registry's) and replace it, as an eventfd open does
    # (src/pylibos/pal/_core.py: _track / _registered_again; _identity.py: gone).
    before = open_fds()
    with pal.open_host(kind) as host:
        first = host.stream_open("eventfd:", nonblocking=True)
        number = eventfd_registry(first)._efd
        host.close(first)
        os.close(number)  # the host closes the registry's epoll
        failures: list[str] = []
        for _ in range(3):
            try:
                watch = host.edge_watch_open()
            except pal.PalError as exc:
                failures.append(str(exc))
            else:
                host.close(watch)
        assert not failures, f"edge watch opens refused: {failures}"
    assert open_fds() <= before | {number}


def test_a_ctrl_c_inside_abandon_then_shutdown_leaves_the_programs_file() -> None:
    # An edge watch's open (no critical section: ``Edges.edge_watch_open`` -> ``_track``)
    # finds the registry gone (its number closed by the host, now the program's file)
    # and abandons it; a Ctrl-C lands inside ``EventfdRegistry.abandon``, before its
    # gate is refused or before its select.epoll is put in ``_STRANDED``.  The registry
    # is left as the host's ``_eventfds``, half abandoned; the program then shuts the
    # host down: ``_retire_registry`` closes it (gate not yet refused), or, the gate
    # refused, the registry's select.epoll, never stranded, closes the number when it is
    # freed.  Either way the PROGRAM's file at that number is closed.  The abandonment
    # should be one step for a Ctrl-C (a critical section), or shutdown should leave a
    # gone registry alone (src/pylibos/pal/_identity.py: abandon; _core.py:
    # _registry_instead_of; _host.py: _retire_registry).
    code = EventfdRegistry.abandon.__code__
    closed_at: list[int] = []
    for n in range(1, 10):
        host = pal.open_host("direct")
        first = host.stream_open("eventfd:", nonblocking=True)
        number = eventfd_registry(first)._efd
        host.close(first)
        del first
        os.close(number)  # the host closes the registry's epoll
        mine = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        assert mine == number
        fired: list[int] = []
        sys.settrace(sigint_at_line(code, n, fired))
        try:
            host.close(host.edge_watch_open())
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        host.shutdown()
        del host
        gc.collect()
        if is_open(mine):
            os.close(mine)
        else:
            closed_at.extend(fired)
        if not fired:
            break
    assert not closed_at, f"the program's file closed after a Ctrl-C at lines {closed_at}"
