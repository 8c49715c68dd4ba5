"""The host (or a program that closes every descriptor it does not know of, as daemons
do) closes the eventfd registry's own epoll under the PAL.  The registry is found gone at
the next eventfd's open, abandoned for good and replaced: eventfd opens go on working,
identity stays on for every eventfd opened after, an eventfd checked against the lost
registry fails rather than acts on a number it cannot vouch for, and the lost registry's
number, handed to another object meanwhile, is never closed by the PAL."""

from __future__ import annotations

import contextlib
import gc
import os

import pytest

from libos_support import eventfd_registry, is_open
from pylibos import pal


@pytest.mark.parametrize("reuse", ["closed", "taken-by-another-file"])
@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_registry_closed_under_the_pal_is_replaced_and_identity_stays_on(
    kind: str, reuse: str
) -> None:
    with pal.open_host(kind) as host:
        old = host.stream_open("eventfd:", nonblocking=True)
        lost = eventfd_registry(old)
        number = lost._efd
        os.close(number)  # the host closes the registry's epoll
        other = None
        if reuse == "taken-by-another-file":
            other = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            assert other == number, "the lowest free number should be the registry's"
        try:
            new = host.stream_open("eventfd:", nonblocking=True)  # works all the same
            registry = eventfd_registry(new)
            assert registry is not lost and host._eventfds is registry
            host.write(new, pal.EVENT_TOKEN)
            assert host.read(new, 8) == pal.EVENT_TOKEN
            # The eventfd checked against the lost registry fails: the PAL cannot vouch
            # for its number any more (it is one of ours here, but need not be).
            with pytest.raises(pal.PalError) as info:
                host.write(old, pal.EVENT_TOKEN)
            assert info.value.code is pal.PalErrorCode.BADHANDLE
            host.close(old)  # forgotten, its number left alone (not known to be ours)
            # Identity is on for the new registry's eventfds: the host swaps another
            # eventfd in at the new one's number, and the PAL refuses to write into it.
            swapped = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            copy = os.dup(new._fd)
            try:
                os.dup2(swapped, new._fd, inheritable=False)
                with pytest.raises(pal.PalError):
                    host.write(new, pal.EVENT_TOKEN)
            finally:
                os.close(swapped)
                os.close(copy)
            host.close(new)
            with contextlib.suppress(OSError):
                os.close(new._fd)  # the swapped-in copy, which the PAL left alone
            # The lost registry's epoll object is kept, never closing its old number,
            # which another object may hold now.
            del lost
            gc.collect()
            if other is not None:
                assert is_open(number), "the PAL closed a number it had lost"
        finally:
            if other is not None:
                os.close(other)
            with contextlib.suppress(OSError):
                os.close(old._fd)  # left alone by the PAL: ours to close here


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_registry_still_at_its_number_is_not_replaced_on_a_refusal(kind: str) -> None:
    """A refusal that is not the registry's loss (the host closed the eventfd just opened,
    before its watch) fails that open only, and keeps the registry."""
    with pal.open_host(kind) as host:
        first = host.stream_open("eventfd:", nonblocking=True)
        registry = eventfd_registry(first)
        real_add = registry.add

        def add_after_the_host_closed_it(fd: int, holder: pal.Handle | None = None) -> None:
            os.close(fd)
            real_add(fd, holder)

        registry.add = add_after_the_host_closed_it  # type: ignore[method-assign]
        try:
            with pytest.raises(pal.PalError):
                host.stream_open("eventfd:", nonblocking=True)
        finally:
            del registry.add
        assert host._eventfds is registry and registry._gate.__name__ != "_refused_gate"
        again = host.stream_open("eventfd:", nonblocking=True)
        assert again._ident is registry
        host.close(again)
        host.close(first)
