"""The eventfd registry keeps kcmp's argument for each descriptor number once made
(``EventfdRegistry._first``).  It names a number's first epoll entry, not a file, so it
stays right when the host closes or replaces the descriptor at that number after the
number was checked: the next check and the close see the swap all the same."""

from __future__ import annotations

import os

import pytest

from pylibos import pal
from pylibos.pal._identity import EventfdRegistry


def _registry(handle: pal.Handle) -> EventfdRegistry:
    registry = handle._ident
    if not isinstance(registry, EventfdRegistry):
        pytest.skip("kcmp is not to be had here: eventfds are checked by inode")
    return registry


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_number_checked_before_the_host_replaced_its_file_fails_the_handle(
    kind: str,
) -> None:
    with pal.open_host(kind) as host:
        handle = host.stream_open("eventfd:", nonblocking=True)
        registry = _registry(handle)
        number = handle._fd
        host.write(handle, pal.EVENT_TOKEN)  # checked: the number's argument is kept
        assert host.read(handle, 8) == pal.EVENT_TOKEN
        assert number in registry._first
        program = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            os.eventfd_write(program, 5)
            os.dup2(program, number, inheritable=False)  # the host swaps the file
            with pytest.raises(pal.PalError) as info:
                host.write(handle, pal.EVENT_TOKEN)
            assert info.value.code is pal.PalErrorCode.BADHANDLE
            host.close(handle)
            assert os.eventfd_read(number) == 5, "the PAL touched the file now at the number"
        finally:
            os.close(program)
            os.close(number)


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_a_number_the_host_closed_and_ours_got_again_serves_the_new_handle(
    kind: str,
) -> None:
    """Handle A at number N is checked; the host closes N (no copy kept); our next
    eventfd B gets N.  B's checks pass (the kept argument names N's entry, now B's),
    and A's close lets N go without closing B's descriptor."""
    with pal.open_host(kind) as host:
        old = host.stream_open("eventfd:", nonblocking=True)
        registry = _registry(old)
        number = old._fd
        host.write(old, pal.EVENT_TOKEN)
        assert number in registry._first
        os.close(number)  # the hostile host closes it
        new = host.stream_open("eventfd:", nonblocking=True)
        if new._fd != number:
            host.close(new)
            host.close(old)
            pytest.skip("the kernel gave the new eventfd another number")
        host.write(new, pal.EVENT_TOKEN)
        assert host.read(new, 8) == pal.EVENT_TOKEN
        host.close(old)
        assert os.fstat(number), "closing the lost handle closed the new one's descriptor"
        host.write(new, pal.EVENT_TOKEN)  # still ours, still checked as ours
        host.close(new)
        with pytest.raises(OSError):
            os.fstat(number)
