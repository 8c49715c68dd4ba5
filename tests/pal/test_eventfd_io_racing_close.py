"""A read or write of an eventfd racing a close of the same handle (or a shutdown), with
no hostile host at all: the I/O passed its check, the close runs, and the program makes
a socket pair, which would get the number were the descriptor closed.  The close leaves
the descriptor to the I/O under way, which closes it as it ends: the I/O's system call
never reaches the program's socket, and nothing is left open."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from pylibos import pal

from ._pal_support import is_open


@pytest.mark.parametrize("closer", ["close", "shutdown"])
@pytest.mark.parametrize("io", ["write", "read"])
@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_eventfd_io_racing_close_never_reaches_the_programs_socket(
    kind: str, io: str, closer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread A reads or writes (check, then the system call); thread B closes the
    handle (a thread exiting), or shuts the host down, between A's check and A's system
    call; thread C, the program, then makes a socket pair."""
    host = pal.open_host(kind)
    try:
        handle = host.stream_open("eventfd:", nonblocking=True)
        number = handle._fd
        pair: list[socket.socket] = []
        fired: list[bool] = []
        name = "eventfd_write" if io == "write" else "eventfd_read"
        real = getattr(os, name)

        def io_after_close_and_reuse(fd: int, *args: Any) -> Any:
            if not fired:  # thread A's call (shutdown's wake of the eventfd is another)
                fired.append(True)
                if closer == "close":
                    host.close(handle)  # thread B
                else:
                    host.shutdown()
                pair.extend(socket.socketpair())  # thread C: the lowest number is free
                pair[0].sendall(b"program bytes")
                assert handle.closed
                assert is_open(number), "closed under the I/O under way"
            return real(fd, *args)

        monkeypatch.setattr(os, name, io_after_close_and_reuse)
        try:
            if io == "write":
                host.write(handle, pal.EVENT_TOKEN)  # thread A
            else:
                host.write(handle, pal.EVENT_TOKEN)
                got = host.read(handle, 8)  # thread A
                assert got and set(got) == set(pal.EVENT_TOKEN)  # shutdown's wake adds one
        finally:
            monkeypatch.setattr(os, name, real)
        try:
            assert pair, "the racing close did not run"
            assert number not in (pair[0].fileno(), pair[1].fileno())
            pair[1].setblocking(False)
            try:
                seen = pair[1].recv(64)
            except BlockingIOError:
                seen = b""
            assert seen == b"program bytes", f"the program's stream carried {seen!r}"
            assert not is_open(number), "the last I/O did not close the descriptor"
            with pytest.raises(pal.PalError, match="closed"):
                host.write(handle, pal.EVENT_TOKEN)
        finally:
            for sock in pair:
                sock.close()
    finally:
        host.shutdown()
