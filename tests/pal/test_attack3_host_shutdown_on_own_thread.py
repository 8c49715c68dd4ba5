"""A host thread that shuts its host down (the program's usual ending,
``libos.shutdown(); host.shutdown()``, run on a thread the LibOS cloned rather than on
the main one).  ``LibOS.shutdown`` no longer joins the thread calling it, and in a fork
child the forking host thread is out of the host's list, so neither waits for itself;
but in the parent ``Host.shutdown`` still lists the caller among the threads it joins,
and a thread can only end after its own call returns: the join waits out the whole
timeout (5 s by default) for nothing."""

from __future__ import annotations

import time

from libos_support import BOUND
from pylibos import pal
from pylibos.libos import LibOS


def test_a_cloned_thread_shuts_the_host_down_without_waiting_for_itself() -> None:
    host = pal.open_host("sgx", max_threads=8)
    libos = LibOS(host, "raw")
    took: list[float] = []

    def ender() -> None:
        libos.shutdown(timeout=2.0)
        t0 = time.monotonic()
        host.shutdown(timeout=2.0)
        took.append(time.monotonic() - t0)

    try:
        libos.clone(ender).join(BOUND)
        assert took, "the thread that shut the host down did not finish"
        assert took[0] < 1.0, (
            f"host.shutdown(timeout=2) called on a host thread took {took[0]:.2f} s: it "
            f"joined the thread running it"
        )
    finally:
        libos.shutdown()
        host.shutdown()
