"""The lock-free eventfd registry under a close racing an open, and an open racing
``shutdown``.

Races are made deterministic by injection: the second party's whole operation runs at
the one point of the first where another thread can get the interpreter (a ctypes
system call, which releases it, or ``os.eventfd``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from pylibos import pal
from pylibos.pal._identity import EventfdRegistry


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_close_of_a_lost_eventfd_racing_an_open_leaves_the_new_eventfd_open(
    kind: str,
) -> None:
    """The host closes eventfd ``old`` (fd N, no copy kept: its epoll entry goes with it).
    Thread C closes ``old``: ``check`` reads the holder of N (still ``old``), and before
    its kcmp runs, thread B opens an eventfd, which gets N, takes N in ``_holders`` and
    registers its file under N.  C's kcmp then finds at N the file registered under N
    (B's); C reads the holder again, finds B, and neither unregisters B's entry nor
    closes B's descriptor."""
    with pal.open_host(kind) as host:
        old = host.stream_open("eventfd:", nonblocking=True)
        registry = old._ident
        assert isinstance(registry, EventfdRegistry)
        number = old._fd
        os.close(number)  # the hostile host closes our descriptor, keeps no copy
        real_kcmp: Callable[..., int] = registry._kcmp_epoll_tfd
        opened: list[pal.Handle] = []

        def kcmp_after_a_racing_open(*args: Any) -> int:
            if not opened:  # thread B's open, at the point where C released the GIL
                opened.append(host.stream_open("eventfd:", nonblocking=True))
            return real_kcmp(*args)

        registry._kcmp_epoll_tfd = kcmp_after_a_racing_open  # type: ignore[assignment]
        host.close(old)  # thread C
        registry._kcmp_epoll_tfd = real_kcmp  # type: ignore[assignment]
        assert opened and opened[0]._fd == number, "the racing open did not get the number"
        new = opened[0]
        alive = True
        try:
            os.fstat(number)
        except OSError:
            alive = False
        try:
            host.write(new, pal.EVENT_TOKEN)
            written: str | None = None
        except pal.PalError as exc:
            written = str(exc)
        assert alive, (
            f"closing a handle whose descriptor the host had closed closed descriptor "
            f"{number}, which a racing open had just been given (its write: {written})"
        )
        assert written is None, f"the racing open's eventfd is broken: {written}"


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_eventfd_open_racing_shutdown_leaks_no_descriptor_and_fails_clearly(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread B is in ``stream_open("eventfd:")`` past the ``closed`` test, inside
    ``os.eventfd`` (no GIL), when the main thread runs ``shutdown``.  B's open must fail
    with the PAL's own error (ShutDownError or PalError) and leave no descriptor open."""
    host = pal.open_host(kind)
    try:
        host.close(host.stream_open("eventfd:"))  # the registry exists, as in a run
        real_eventfd = os.eventfd
        made: list[int] = []

        def eventfd_during_shutdown(*args: Any) -> int:
            host.shutdown()  # the main thread, while B's system call runs
            fd = real_eventfd(*args)
            made.append(fd)
            return fd

        monkeypatch.setattr(os, "eventfd", eventfd_during_shutdown)
        try:
            host.stream_open("eventfd:")
            outcome = "opened on a host that is shut down"
        except pal.PalError:
            outcome = "PalError"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        monkeypatch.setattr(os, "eventfd", real_eventfd)
        assert made
        leaked = []
        for fd in made:
            try:
                os.fstat(fd)
            except OSError:
                continue
            leaked.append(fd)
            os.close(fd)
        assert outcome == "PalError" and not leaked, (
            f"open racing shutdown: {outcome}; descriptors left open: {leaked}"
        )
    finally:
        host.shutdown()
