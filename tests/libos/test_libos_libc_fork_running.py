"""A fork made below Python (a C library's ``fork``, here through ctypes) runs no fork hook,
so a child's copy of the LibOS keeps the parent's running threads in ``_running``.
``current_thread`` compares the pid with the one ``_running`` belongs to and takes a hit
there only for the forking thread: a native thread of the child that the C library gives
a parent LibOS thread's stack (and so its ident) is not taken for that thread."""

from __future__ import annotations

import _thread
import ctypes
import itertools
import os
import threading
from typing import Any

import pytest

from libos_support import BOUND
from pylibos import pal
from pylibos.libos import LibOS, install
from pylibos.libos import _hook as hook_module


def test_a_native_thread_after_a_libc_fork_is_not_taken_for_a_parent_libos_thread() -> None:
    """As ``test_a_native_thread_in_a_fork_child_is_not_taken_for_a_parent_libos_thread``,
    with the fork made by the C library (``PyDLL``: the GIL held across it, as a C
    extension forking would).  docs/robustness.md: the PAL asks getpid, not a fork hook,
    because a fork made below Python runs no hook; the LibOS's ``_running`` relies on
    one, so ``current_thread`` checks the pid as well."""
    libc_fork = ctypes.PyDLL(None).fork
    libc_fork.restype = ctypes.c_int
    host = pal.open_host("sgx")
    libos = LibOS(host, "eventfd")
    gate, running = threading.Event(), threading.Event()
    parent: dict[str, Any] = {}

    def body() -> None:
        parent["ident"] = threading.get_ident()
        parent["thread"] = libos.current_thread()
        running.set()
        gate.wait(BOUND)

    read_fd, write_fd = os.pipe()
    try:
        with install(libos):
            t = threading.Thread(target=body)
            t.start()
            assert running.wait(BOUND)
            pid = libc_fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    found: list[str] = []
                    release = _thread.allocate_lock()
                    release.acquire()
                    done = _thread.allocate_lock()
                    arrivals = itertools.count(1)  # next() is one step

                    def native() -> None:
                        if threading.get_ident() == parent["ident"]:
                            got = libos.current_thread()
                            found.append(f"{got is parent['thread']}:{got.tid}")
                        if next(arrivals) == 16:
                            done.release()
                        release.acquire()
                        release.release()

                    done.acquire()
                    for _ in range(16):
                        hook_module._ORIGINAL_START(native, ())
                    done.acquire(timeout=BOUND)
                    os.write(write_fd, (found[0] if found else "no-reuse").encode())
                    code = 0
                finally:
                    os._exit(code)
            assert pid > 0
            os.close(write_fd)
            write_fd = -1
            answer = os.read(read_fd, 100).decode()
            _, status = os.waitpid(pid, 0)
            gate.set()
            t.join(BOUND)
        assert os.waitstatus_to_exitcode(status) == 0
        if answer == "no-reuse":
            pytest.skip("the C library gave the child's threads no parent thread's ident")
        assert not answer.startswith("True"), (
            f"after a libc fork, a native thread of the child was taken for the parent's "
            f"LibOS thread (tid {parent['thread'].tid}): {answer}"
        )
    finally:
        gate.set()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        libos.shutdown()
        host.shutdown()
