"""``stream_from_fd``'s probe epoll (``Waiting._epoll_can_watch``) played against a host
out of descriptors, a Ctrl-C at every line, a program that closes its descriptor between
the fstat and the probe, and a number out of range."""

from __future__ import annotations

import os
import sys

import pytest

from libos_support import descriptors_exhausted, open_fds, sigint_at_line
from pylibos import pal
from pylibos.pal._wait import Waiting

_PROBE = Waiting._epoll_can_watch.__code__


def test_a_host_out_of_descriptors_fails_the_probe_with_a_pal_error() -> None:
    """Held (added coverage): no descriptor left for the probe epoll: TOOMANY, a
    PalError naming the descriptor, never an OSError; the host takes it once one is
    free."""
    fds = open_fds()
    main, terminal = os.openpty()
    try:
        with pal.open_host("direct") as host:
            with descriptors_exhausted(0), pytest.raises(pal.PalError) as info:
                host.stream_from_fd(terminal)
            assert info.value.code is pal.PalErrorCode.TOOMANY
            assert f"fd {terminal}" in info.value.message
            host.close(host.stream_from_fd(terminal))
    finally:
        os.close(main)
        os.close(terminal)
    assert open_fds() == fds


def test_a_ctrl_c_at_every_line_of_the_probe_leaks_no_epoll() -> None:
    """Held (added coverage): a Ctrl-C (the PAL's own SIGINT handler) at every line of
    the probe, for a device it takes and one it refuses: the probe epoll is closed
    whichever line it came at, and the host takes the device after."""
    fds = open_fds()
    main, terminal = os.openpty()
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pal.open_host("direct") as host:
            for fd in (terminal, null):
                lines: set[int] = set()
                for n in range(1, 30):
                    fired: list[int] = []
                    sys.settrace(sigint_at_line(_PROBE, n, fired))
                    try:
                        handle = host.stream_from_fd(fd)
                    except KeyboardInterrupt:
                        handle = None
                    except pal.PalError as exc:
                        assert fd == null and exc.code is pal.PalErrorCode.NOTSUPPORT
                        handle = None
                    finally:
                        sys.settrace(None)
                    if handle is not None:
                        host.close(handle)
                    assert open_fds() == fds | {main, terminal, null}, f"line {fired}"
                    if not fired:
                        break
                    lines.update(fired)
                assert len(lines) >= 3, lines
            host.close(host.stream_from_fd(terminal))
    finally:
        os.close(main)
        os.close(terminal)
        os.close(null)
    assert open_fds() == fds


def test_a_device_closed_before_the_probe_is_told_closed() -> None:
    # The program closes its terminal's descriptor between the fstat and the probe.  The
    # probe epoll is then made at that very number (the lowest free), and asked to watch
    # itself: epoll_ctl EINVAL, reported as DENIED "fd N: epoll_ctl: Invalid argument",
    # as if the host refused.  The descriptor is closed: it should be BADHANDLE, as the
    # fstat of a closed number says (src/pylibos/pal/_wait.py: _epoll_can_watch).
    fds = open_fds()
    main, terminal = os.openpty()
    try:
        with pal.open_host("direct") as host:
            real_aside = host._aside

            def closed_meanwhile(syscall: str, where: str, fn: object, *args: object) -> object:
                if syscall == "epoll_create1":
                    os.close(terminal)  # the program closes it, racing the probe
                return real_aside(syscall, where, fn, *args)  # type: ignore[arg-type]

            host._aside = closed_meanwhile  # type: ignore[method-assign,assignment]
            try:
                with pytest.raises(pal.PalError) as info:
                    host.stream_from_fd(terminal)
            finally:
                del host._aside
            assert info.value.code is pal.PalErrorCode.BADHANDLE, info.value
    finally:
        os.close(main)
    assert open_fds() == fds


def test_a_number_out_of_range_is_a_pal_error() -> None:
    # ``stream_from_fd(2**40)``: os.fstat raises OverflowError ("Python int too large to
    # convert to C int"), which comes out of the PAL as is, where ``stream_from_fd(-1)``
    # is a clear BADHANDLE.  A number no descriptor can have should be BADHANDLE too
    # (src/pylibos/pal/_host.py: stream_from_fd).
    with pal.open_host("direct") as host:
        with pytest.raises(pal.PalError) as info:
            host.stream_from_fd(-1)
        assert info.value.code is pal.PalErrorCode.BADHANDLE
        with pytest.raises(pal.PalError) as info:
            host.stream_from_fd(2**40)
        assert info.value.code is pal.PalErrorCode.BADHANDLE
