"""A hostile host swaps an eventfd's descriptor, and the first thing the PAL does with
the handle is close it: the close (the short path every thread start of sgx/eventfd
takes) must see the swap, and neither close nor unregister the file that now has the
number."""

from __future__ import annotations

import os

import pytest

from libos_support import eventfd_number_taken_over
from pylibos import pal
from pylibos.pal._identity import EventfdRegistry


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_closing_an_eventfd_whose_number_the_program_took_leaves_the_programs(
    kind: str,
) -> None:
    with pal.open_host(kind) as host:
        handle = host.stream_open("eventfd:", nonblocking=True)
        number = handle._fd
        program = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            os.eventfd_write(program, 3)
            os.dup2(program, number, inheritable=False)  # the host closes; it is reused
            host.close(handle)
            assert handle.closed and handle not in host.open_handles()
            assert os.eventfd_read(number) == 3, "the close touched the program's eventfd"
            os.close(number)  # still open: the close did not close it
        finally:
            os.close(program)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_closing_an_eventfd_whose_number_our_next_eventfd_took_leaves_the_new_one(
    kind: str,
) -> None:
    """The host takes the old eventfd away keeping a copy (its registry entry lives on),
    the next eventfd gets the number, and the old handle is closed first: the new one
    keeps its descriptor, its registry entry and its claim on the number."""
    with pal.open_host(kind) as host, eventfd_number_taken_over(host) as (old, new):
        number = new._fd
        host.close(old)
        host.write(new, pal.EVENT_TOKEN)  # its identity still holds: not refused
        assert host.read(new, 8) == pal.EVENT_TOKEN
        assert isinstance(new._ident, EventfdRegistry)
        assert new._ident.check(new) is True
        host.close(new)
        with pytest.raises(OSError):
            os.fstat(number)  # closed by its own close, and only then


def test_a_give_back_leaves_a_number_another_handle_took() -> None:
    """``remove`` with the old holder, after a new handle took the number, keeps the
    new one's claim; ``check`` fails the old one."""
    with pal.open_host("direct") as host:
        first = host.stream_open("eventfd:")
        second = host.stream_open("eventfd:")
        registry = first._ident
        assert isinstance(registry, EventfdRegistry)
        registry._holders[first._fd] = second  # as if second had taken first's number
        assert registry.check(first) is False
        registry.remove(first._fd, first)
        assert registry._holders[first._fd] is second
        registry.add(first._fd, first)  # put back (entry and claim), so both close normally
        host.close(first)
        host.close(second)
        assert host.open_handles() == []
