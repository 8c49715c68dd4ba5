"""A hostile host exhausts the descriptor table at the moment of a host's first eventfd:
the eventfd registry (the only way to tell one eventfd from another) fails to open.  The
open fails with ``TOOMANY`` and the next open tries again; were identity given up for good
(checked by inode, which all eventfds share), a later swap would go unseen."""

from __future__ import annotations

import contextlib
import os
import resource

import pytest

from pylibos import pal


def _lowest_free() -> int:
    fd = os.dup(0)
    os.close(fd)
    return fd


@pytest.mark.parametrize("room", [0, 1], ids=["no-room", "room-for-one"])
@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_exhausted_descriptors_at_the_first_eventfd_leave_its_identity_on(
    kind: str, room: int
) -> None:
    """``room``: descriptors the host leaves free for the first open (none: the registry
    is made first and fails; one: the eventfd takes it, where the registry came second)."""
    with pal.open_host(kind) as host:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free() + room, hard))
        try:
            first = host.stream_open("eventfd:")  # the host: (almost) no descriptor now
        except pal.PalError as exc:
            assert exc.code is pal.PalErrorCode.TOOMANY, str(exc)
        else:
            host.close(first)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        handle = host.stream_open("eventfd:", nonblocking=True)  # the table has room again
        number = handle._fd
        program = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            copy = os.dup(number)  # the host keeps our eventfd, and swaps in another
            os.dup2(program, number, inheritable=False)
            try:
                host.write(handle, pal.EVENT_TOKEN)
                wrote = True
            except pal.PalError:
                wrote = False
            host.close(handle)
        finally:
            for fd in (program, copy):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.close(number)  # the swapped-in copy, if the close left it
        assert not wrote, (
            "the PAL wrote into an eventfd the host swapped in: one failed registry open "
            "(descriptors exhausted for an instant) turned eventfd identity off for good "
            f"(registry: {host._eventfds!r})"
        )
