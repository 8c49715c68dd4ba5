"""A Ctrl-C at the first lines of the thread-start hook's replacement, before its
``try``, must not leave the ``threading.Thread`` in ``threading._limbo`` for good.

``Thread.start`` puts the thread in ``_limbo``, then calls ``_start_new_thread`` (on
3.13, ``_start_joinable_thread``) and takes it out again only for an ``Exception``.
Natively that call is the C primitive, where no Python-level signal handler runs
before it has started the thread.  Under the LibOS it is ``Hook._start_new_thread``,
whose comment promises that a KeyboardInterrupt between any two of its bytecodes
leaves either a running thread or the ``Thread`` taken out of ``_limbo``: but its
``if not self.installed`` and ``started = []`` lines come before the ``try`` whose
handler (``_not_started``) does that.  An interrupt there left a thread that never
ran listed by ``threading.enumerate()`` (state "initial") for the life of the process.

Failed before b756f63, which made each replacement a Ctrl-C-safe section from its first
bytecode to the first line of its ``try`` (``marks_critical_sections_from_entry``): the
interrupt is now raised inside the ``try`` and the thread taken out of ``_limbo``."""

from __future__ import annotations

import sys
import threading

import pytest

from libos_support import sigint_at_line, thread_under_the_hook
from pylibos.libos import Hook

_REPLACEMENT = (
    Hook._start_joinable_thread if sys.version_info >= (3, 13) else Hook._start_new_thread
).__code__


@pytest.mark.parametrize("n", [1, 2])
def test_an_interrupt_before_the_hooks_try_leaves_no_thread_in_limbo(n: int) -> None:
    fired: list[int] = []
    with thread_under_the_hook() as thread:
        sys.settrace(sigint_at_line(_REPLACEMENT, n, fired))
        try:
            thread.start()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        assert fired, "the interrupt never fired"
        # Before any LibOS work: no thread was made, so none runs.
        assert thread.ident is None
        # Out of _limbo, as Thread.start leaves a thread whose start failed.
        limbo = threading._limbo  # type: ignore[attr-defined]
        assert thread not in limbo, f"left in _limbo (line {fired[0]})"
        assert thread not in threading.enumerate()
