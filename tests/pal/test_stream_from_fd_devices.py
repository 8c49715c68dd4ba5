"""``stream_from_fd`` over character devices: one Linux's epoll cannot watch (no poll
operation, as ``/dev/null``) is refused as a file is, so the LibOS's epoll refuses it
with EPERM as ``select.epoll`` does; one it can watch is taken."""

from __future__ import annotations

import os
import select

import pytest

from libos_support import open_fds
from pylibos import pal


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_without_poll_is_refused_as_linux_epoll_refuses_it(device: str) -> None:
    fds = open_fds()
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with select.epoll() as native, pytest.raises(PermissionError):
            native.register(fd, select.EPOLLIN)
        with pal.open_host("sgx") as host:
            with pytest.raises(pal.PalError) as info:
                host.stream_from_fd(fd)
            assert info.value.code is pal.PalErrorCode.NOTSUPPORT
            assert "cannot be polled" in info.value.message
    finally:
        os.close(fd)
    assert open_fds() == fds  # the probe epoll is closed


def test_a_device_with_poll_is_taken() -> None:
    """A pseudo-terminal, a character device Linux's epoll watches."""
    main, terminal = os.openpty()
    try:
        with pal.open_host("direct") as host:
            handle = host.stream_from_fd(terminal)
            os.write(main, b"x\n")
            ready = host.streams_wait_events([handle], [pal.WAIT_READ], 1_000_000)
            assert ready[0] & pal.WAIT_READ
            host.close(handle)
        os.fstat(terminal)  # still the program's
    finally:
        os.close(main)
        os.close(terminal)
