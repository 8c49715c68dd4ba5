"""Defect 4: a host that keeps the process out of descriptors cannot make the IPC worker
spin on its listener.

A client is waiting in the listener's queue, so the listener stays readable, but every
accept fails with EMFILE.  Before, the worker retried at once, about 33,000 accepts a
second on a full core.  Now it stops looking at the listener for a while (doubling up
to half a second), and serves the client once descriptors are back.
"""

from __future__ import annotations

import threading

from libos_support import BOUND, booted, descriptors_exhausted, wait_until
from pylibos.libos import ECHO

from .hostile import HostileHost, abstract_name

WINDOW = 0.5


def test_accept_backs_off_on_emfile(hostile: HostileHost) -> None:
    with booted("sgx", "raw") as libos:
        host = libos.host
        worker = libos.ipc_worker
        accepts = host.calls["accept"]
        with descriptors_exhausted():
            conn = hostile.connect(abstract_name(host.instance, worker.name, raw=False))
            assert wait_until(lambda: host.calls["accept"] > accepts), "never tried"
            before = host.calls["accept"]
            threading.Event().wait(WINDOW)  # a window to count accepts in, not a sync point
            tried = host.calls["accept"] - before
        assert tried <= 12, f"{tried} accepts in {WINDOW} s while out of descriptors: a spin"
        hostile.do("close", conn)
        assert worker.thread is not None and worker.thread.is_alive()
        with libos.ipc_connect(libos.ipc_name) as client:
            assert client.request(ECHO, b"back", timeout=BOUND) == b"back"
