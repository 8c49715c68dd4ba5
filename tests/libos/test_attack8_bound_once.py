"""The exit work bound once (c63ff26): a host's ``_on_thread_exit`` and a LibOS's
``_at_exit`` are made when each is, so a thread's exit must run its own host's and its
own LibOS's work, with two LibOSes on one host and with two hosts, and a host and LibOS
shut down and dropped must leave nothing behind once collected."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from libos_support import BOUND, open_fds, wait_until
from pylibos.libos import LibOS
from pylibos.pal import open_host


def test_each_thread_exits_through_its_own_host_and_libos() -> None:
    fds = open_fds()
    one, two = open_host("sgx"), open_host("direct")
    first, second, third = LibOS(one, "eventfd"), LibOS(one, "raw", True), LibOS(two, "eventfd")
    go = threading.Event()
    try:
        for libos in (first, second, third):
            assert getattr(libos._at_exit, "__self__", None) is libos
        assert getattr(one._on_thread_exit, "__self__", None) is one
        assert getattr(two._on_thread_exit, "__self__", None) is two
        threads = {
            libos: [libos.clone(go.wait, BOUND) for _ in range(3)]
            for libos in (first, second, third)
        }
        for libos, made in threads.items():
            for t in made:
                assert t._pal is not None
                assert getattr(t._pal._on_exit, "__self__", None) is libos.host
                assert libos.thread_by_tid(t.tid) is t
        live_one = len(one._threads)
        go.set()
        for libos, made in threads.items():
            for t in made:
                assert t.join(BOUND)
                assert libos.thread_by_tid(t.tid) is None
        # Each ended on its own host: the other host's list is untouched by it.
        assert wait_until(lambda: len(one._threads) == live_one - 6)
        assert len(second._factory._free) == 3  # the pooled LibOS got its own events back
        assert first._factory._free == [] and third._factory._free == []
    finally:
        go.set()
        for libos in (first, second, third):
            libos.shutdown()
        one.shutdown()
        two.shutdown()
    assert wait_until(lambda: open_fds() <= fds)


def test_hosts_and_libos_shut_down_and_dropped_are_collected() -> None:
    refs: list[weakref.ref[Any]] = []
    for kind, events in (("sgx", "eventfd"), ("direct", "raw"), ("sgx", "pipe")):
        host = open_host(kind)
        libos = LibOS(host, events, True)
        assert libos.clone(lambda: None).join(BOUND)
        libos.shutdown()
        host.shutdown()
        refs += [weakref.ref(host), weakref.ref(libos)]
        del host, libos
    gc.collect()
    assert [r for r in refs if r() is not None] == []
