"""A write to an eventfd racing a close of the same handle, with no hostile host at all:
the write passed its check, the close closed the descriptor, the program's next socket
got the number, and the write's system call lands in the program's socket."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from pylibos import pal


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_attack_eventfd_write_racing_close_writes_into_the_programs_socket(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread A sets an event (``write``: check, then ``eventfd_write``); thread B closes
    it (a thread exiting) between A's check and A's system call; thread C, the program,
    makes a socket pair, which gets the number.  A's write then puts eight bytes into the
    program's stream: the PAL acted on a descriptor that is no longer its own."""
    with pal.open_host(kind) as host:
        handle = host.stream_open("eventfd:", nonblocking=True)
        number = handle._fd
        real_write = os.eventfd_write
        pair: list[socket.socket] = []

        def write_after_close_and_reuse(fd: int, value: int) -> Any:
            if not pair:
                host.close(handle)  # thread B
                pair.extend(socket.socketpair())  # thread C: the lowest number is free
            return real_write(fd, value)

        monkeypatch.setattr(os, "eventfd_write", write_after_close_and_reuse)
        try:
            host.write(handle, pal.EVENT_TOKEN)  # thread A
            outcome = "returned"
        except pal.PalError as exc:
            outcome = f"PalError: {exc}"
        monkeypatch.setattr(os, "eventfd_write", real_write)
        try:
            assert pair and pair[0].fileno() == number, "the program did not get the number"
            pair[1].setblocking(False)
            try:
                stolen = pair[1].recv(64)
            except BlockingIOError:
                stolen = b""
        finally:
            for sock in pair:
                sock.close()
        assert stolen == b"", (
            f"a write racing the close of its handle wrote {stolen!r} into the program's "
            f"socket at descriptor {number} ({outcome})"
        )
