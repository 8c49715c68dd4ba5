"""The IPC worker: requests within one process and between two, peers without the key,
and a worker that a wakeup alone does not stop."""

from __future__ import annotations

import secrets
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from subprocess import Popen

import pytest

from libos_support import (
    BOUND,
    INJECTABLE,
    INJECTABLE_IDS,
    booted,
    inject,
    wait_until,
)
from pylibos.libos import ECHO, THREADS, IpcClient, IpcError, LibOS
from pylibos.libos._ipc import _HEADER, MAX_PAYLOAD
from pylibos.pal import HOST_KINDS, WAIT_WRITE, open_host


def _tids(reply: bytes) -> list[int]:
    return list(struct.unpack(f"!{len(reply) // 4}I", reply))


# -- within one process ----------------------------------------------------------------


def test_echo_and_threads(libos: LibOS) -> None:
    go = threading.Event()
    t = libos.clone(go.wait, BOUND)
    try:
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"hello") == b"hello"
            assert client.request(ECHO) == b""
            big = secrets.token_bytes(100_000)
            assert client.request(ECHO, big) == big
            assert _tids(client.request(THREADS)) == sorted([libos.main_thread.tid, t.tid])
        assert wait_until(lambda: libos.ipc_worker.served == 4)
    finally:
        go.set()
        assert t.join(BOUND)


def test_unknown_request_code(libos: LibOS) -> None:
    with libos.ipc_connect(libos.ipc_name) as client:
        with pytest.raises(IpcError, match="unknown request code 99"):
            client.request(99, b"x")
        assert client.request(ECHO, b"still") == b"still"


def test_handler_failure_is_an_error_reply(libos: LibOS) -> None:
    def broken(_payload: bytes) -> bytes:
        raise KeyError("nope")

    libos.ipc_worker.handlers[7] = broken
    with libos.ipc_connect(libos.ipc_name) as client:
        with pytest.raises(IpcError, match="KeyError"):
            client.request(7)
        assert client.request(ECHO, b"ok") == b"ok"


def test_oversized_request_is_refused_locally(libos: LibOS) -> None:
    with libos.ipc_connect(libos.ipc_name) as client, pytest.raises(ValueError, match="exceeds"):
        client.request(ECHO, bytes(MAX_PAYLOAD + 1))


def test_oversized_frame_from_a_peer_is_dropped(libos: LibOS) -> None:
    worker = libos.ipc_worker
    rejected = worker.rejected
    with libos.ipc_connect(libos.ipc_name) as client:
        # The client's end is nonblocking: let its handshake finish before writing to it.
        assert libos.host.streams_wait_events([client._handle], [WAIT_WRITE], 5_000_000)
        libos.host.write(client._handle, _HEADER.pack(ECHO, 1, MAX_PAYLOAD + 1))
        with pytest.raises(ConnectionError):  # reset, or a broken pipe if it writes first
            client.request(ECHO, b"x")
    assert worker.rejected == rejected + 1
    with libos.ipc_connect(libos.ipc_name) as client:
        assert client.request(ECHO, b"y") == b"y"


def test_no_such_worker(libos: LibOS) -> None:
    with pytest.raises(FileNotFoundError):
        libos.ipc_connect("nobody-here")


def test_many_clients(libos: LibOS) -> None:
    clients = [libos.ipc_connect(libos.ipc_name) for _ in range(5)]
    try:
        for i, client in enumerate(clients):
            assert client.request(ECHO, bytes([i])) == bytes([i])
        for i, client in enumerate(reversed(clients)):
            assert client.request(ECHO, bytes([i]) * 3) == bytes([i]) * 3
    finally:
        for client in clients:
            client.close()


def test_a_wakeup_does_not_stop_the_worker(libos: LibOS) -> None:
    worker = libos.ipc_worker
    event = worker._event
    for _ in range(3):
        event.set()
        assert wait_until(lambda: not event.is_set()), "the worker did not take the wakeup"
        assert worker.thread is not None and worker.thread.is_alive()
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"alive") == b"alive"


@pytest.mark.parametrize(("kind", "events"), INJECTABLE, ids=INJECTABLE_IDS)
def test_a_forged_wakeup_does_not_stop_the_worker(kind: str, events: str) -> None:
    with booted(kind, events) as libos:
        worker = libos.ipc_worker
        inject(worker._event, 5)
        assert wait_until(
            lambda: not libos.host.streams_wait_events([worker._event.read_handle], [1], 0)[0]
        ), "the worker did not drain the forged wakeup"
        assert worker.thread is not None and worker.thread.is_alive()
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"alive") == b"alive"
        thread = worker.thread
    # Shutdown does stop it.
    assert not thread.is_alive()


# -- peers without the master key (sgx) --------------------------------------------------


def test_peer_with_the_wrong_key_is_rejected() -> None:
    with booted("sgx", "raw") as libos:
        worker = libos.ipc_worker
        rejected = worker.rejected
        with open_host("sgx", instance=libos.host.instance) as intruder_host:
            intruder = IpcClient(intruder_host, libos.ipc_name)
            with pytest.raises(OSError):
                intruder.request(ECHO, b"let me in")
            intruder.close()
        assert wait_until(lambda: worker.rejected == rejected + 1)
        assert worker.served == 0
        # The worker keeps serving those who hold the key.
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"friend") == b"friend"


# -- between two processes -------------------------------------------------------------

CHILD = """
import sys
from pylibos.libos import LibOS
from pylibos.pal import open_host

kind, key, instance, name = sys.argv[1:]
host = open_host(kind, bytes.fromhex(key), instance=instance)
try:
    with LibOS(host, ipc_name=name) as libos:
        print("ready", libos.main_thread.tid, flush=True)
        sys.stdin.read()
finally:
    host.shutdown()
print("bye", flush=True)
"""


@contextmanager
def ipc_child(kind: str, key_hex: str, instance: str, name: str) -> Iterator[Popen[str]]:
    """Another process running pylibos with an IPC worker; killed (bounded) if the test
    leaves it running, its pipes closed either way."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, key_hex, instance, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(BOUND)
        if not child.stdin.closed:
            child.stdin.close()
        child.stdout.close()


@pytest.mark.parametrize("kind", HOST_KINDS)
def test_two_processes(kind: str) -> None:
    key = secrets.token_bytes(32)
    instance = "t" + secrets.token_hex(6)
    name = "ipc-child"
    with ipc_child(kind, key.hex(), instance, name) as child:
        assert child.stdin is not None and child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the child did not start"
        line = child.stdout.readline().split()
        assert line[0] == "ready"
        child_main = int(line[1])
        host = open_host(kind, key, instance=instance)
        try:
            with LibOS(host) as libos, libos.ipc_connect(name) as client:
                assert client.request(ECHO, b"across") == b"across"
                assert _tids(client.request(THREADS)) == [child_main]
                with pytest.raises(IpcError):
                    client.request(12345)
        finally:
            host.shutdown()
        child.stdin.close()
        assert child.wait(BOUND) == 0
        assert child.stdout.read().strip() == "bye"


def test_other_process_with_the_wrong_key() -> None:
    instance = "t" + secrets.token_hex(6)
    with ipc_child("sgx", secrets.token_hex(32), instance, "ipc-child") as child:
        assert child.stdin is not None and child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready and child.stdout.readline().startswith("ready")
        with open_host("sgx", instance=instance) as host:
            client = IpcClient(host, "ipc-child")
            with pytest.raises(OSError):
                client.request(ECHO, b"x")
            client.close()
        child.stdin.close()
        assert child.wait(BOUND) == 0


def test_request_keeps_its_deadline_against_half_a_record() -> None:
    """A host that delivers part of the reply's record cannot hold a request past its
    timeout: the client's end is nonblocking and waits only until the deadline."""
    host = open_host("sgx")
    try:
        server = host.stream_open("pipe.srv:half")
        client = IpcClient(host, "half")
        accepted = host.wait_for_client(server)
        try:
            assert accepted._sock is not None
            accepted._sock.send(b"\x17\x03\x03")  # the start of a record header, no more
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                client.request(ECHO, b"x", timeout=0.3)
            assert time.monotonic() - started < 3.0
        finally:
            client.close()
            host.close(accepted)
            host.close(server)
    finally:
        host.shutdown()


def test_ipc_worker_survives_forged_bytes_on_a_tls_event_channel() -> None:
    with booted("sgx", "pipe") as libos:
        worker = libos.ipc_worker
        inject(worker._event, 7)
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"still here") == b"still here"
        assert worker._event.rebuilt >= 1
