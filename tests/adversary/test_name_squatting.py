"""Defect 6: a host that binds names first cannot keep the LibOS from booting or
cloning, and a data pipe whose name it took fails closed.

Before, names were predictable (``ipc.<pid>``, ``ev.<pid>.<factory>.<n>``) and a taken
name was an error: a process that bound the next one made ``LibOS()`` or ``clone()``
fail with EEXIST.  Now the LibOS draws its names at random and draws again when one is
taken.  A data pipe keeps its name (its peer knows it), so a host that holds it gets a
connection it cannot complete: no handshake, no byte of the payload.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from libos_support import BOUND, booted
from pylibos.libos import ECHO, IpcClient, LibOS
from pylibos.pal import PalError, PalErrorCode, open_host

from .hostile import HostileHost, abstract_name

SECRET = b"the program's secret payload " + secrets.token_hex(8).encode()


def test_boot_with_the_old_predictable_ipc_name_taken(hostile: HostileHost) -> None:
    instance = "sq" + secrets.token_hex(6)
    hostile.bind(abstract_name(instance, f"ipc.{os.getpid()}", raw=False))
    host = open_host("sgx", instance=instance)
    try:
        with LibOS(host) as libos, libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"booted", timeout=BOUND) == b"booted"
    finally:
        host.shutdown()


def _squatted_names(
    monkeypatch: pytest.MonkeyPatch, hostile: HostileHost, libos: LibOS, taken: int
) -> list[str]:
    """Make the event factory's next ``taken`` names ones the host has bound already."""
    names = [secrets.token_hex(8) for _ in range(taken)]
    for name in names:
        hostile.bind(abstract_name(libos.host.instance, f"ev.{name}", raw=True))
    queue: Iterator[str] = iter(names)
    draw = libos._factory._random_name

    def next_name() -> str:
        return next(queue, None) or draw()

    monkeypatch.setattr(libos._factory, "_random_name", next_name)
    return names


def test_clone_goes_on_past_taken_names(
    hostile: HostileHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    with booted("sgx", "raw") as libos:
        _squatted_names(monkeypatch, hostile, libos, 5)
        listens = libos.host.calls["listen"]
        t = libos.clone(lambda: None)
        assert t.join(BOUND)
        assert libos.host.calls["listen"] == listens + 6  # five taken, the sixth free


def test_clone_fails_cleanly_when_every_try_is_taken(
    hostile: HostileHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    with booted("sgx", "raw") as libos:
        handles = set(libos.host.open_handles())
        threads = len(libos.threads())
        _squatted_names(monkeypatch, hostile, libos, 8)
        with pytest.raises(FileExistsError, match="no free event pipe name"):
            libos.clone(lambda: None)
        assert set(libos.host.open_handles()) == handles
        assert len(libos.threads()) == threads
        t = libos.clone(lambda: None)  # the next names are free again
        assert t.join(BOUND)


def test_data_pipe_to_a_squatter_fails_closed(hostile: HostileHost) -> None:
    """The host holds the name of a TLS data pipe and records every byte it gets."""
    with open_host("sgx") as host:
        host.handshake_timeout = 0.5
        listener = hostile.bind(abstract_name(host.instance, "data", raw=False))
        hostile.do("record", listener)
        end = host.stream_open("pipe:data")
        try:
            with pytest.raises(PalError) as info:
                host.write(end, SECRET)
            assert info.value.code in (PalErrorCode.TIMEDOUT, PalErrorCode.AUTH_FAILED)
        finally:
            host.close(end)
        assert SECRET not in hostile.recorded()


def test_ipc_request_to_a_squatter_fails_closed(hostile: HostileHost) -> None:
    with open_host("sgx") as host:
        host.handshake_timeout = 0.5
        listener = hostile.bind(abstract_name(host.instance, "ipc.victim", raw=False))
        hostile.do("record", listener)
        client = IpcClient(host, "ipc.victim")
        try:
            with pytest.raises(OSError):
                client.request(ECHO, SECRET, timeout=1.0)
        finally:
            client.close()
        assert SECRET not in hostile.recorded()
