"""The line-by-line Ctrl-C test (``test_libos_interrupts``) leaves garbage-collector
callbacks untraced (``_from_the_collector``, abee161): an interrupt injected there is
the collector's, reported as unraisable, and never reaches the clone.  But a collection
that starts inside the clone runs more Python code than ``gc.callbacks``: the weak
reference callbacks of what it frees.  Every host and LibOS is in a ``WeakSet``
(``pal._core._hosts``, ``libos._teardown._LIVE``) and is freed by the collector (a used
host holds cycles, and since c63ff26 every host does: its bound-once ``_on_thread_exit``),
so the collection runs ``WeakSet``'s Python ``_remove`` for each.  The sweep traced
those lines and injected its interrupt there: the interrupt was reported as unraisable
(an error under ``filterwarnings = error``), ``_interrupt_at_line`` said it never
reached the work, and the clone it was meant to cut short ran whole.

Failed before b756f63, which leaves out of the sweep everything run while a collection
is under way: over the lines of ``gc.collect(); libos.clone(...)`` with a dropped,
shut-down host waiting for the collector, no interrupt is swallowed."""

from __future__ import annotations

import gc
import sys
from typing import Any

from libos.test_libos_interrupts import _interrupt_at_line, _line_events
from libos_support import BOUND
from pylibos.libos import LibOS, LibOSThread
from pylibos.pal import open_host


def _noop() -> None:
    return None


def _host_for_the_collector() -> None:
    """A host opened, shut down and dropped: freed only by the collector (its cycles),
    which then runs ``WeakSet._remove`` for it (``pal._core._hosts``)."""
    host = open_host("direct")
    host.shutdown()


def test_no_interrupt_of_the_every_line_sweep_is_lost_in_the_collector() -> None:
    host = open_host("sgx")
    libos = LibOS(host, "eventfd")
    made: list[LibOSThread] = []
    swallowed: list[str] = []
    previous = sys.unraisablehook

    def seen(args: Any) -> None:
        if isinstance(args.exc_value, KeyboardInterrupt):
            swallowed.append(f"{args.err_msg} {args.object!r}")
        else:
            previous(args)

    def clone() -> None:
        # A collection starting inside the clone (here at its start, where an
        # allocation could start one), with a host left for it to free.
        gc.collect()
        made.append(libos.clone(_noop))

    sys.unraisablehook = seen
    try:
        _host_for_the_collector()
        lines = _line_events(clone)
        while made:
            assert made.pop().join(BOUND)
        for n in range(1, min(lines, 40) + 1):
            _host_for_the_collector()
            _interrupt_at_line(clone, n)
            while made:
                assert made.pop().join(BOUND)
    finally:
        sys.unraisablehook = previous
        libos.shutdown()
        host.shutdown()
    assert not swallowed, f"interrupts the collector swallowed: {swallowed[:3]}"
