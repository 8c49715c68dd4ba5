"""The thread-start hook's replacements after b756f63 (a Ctrl-C-safe section from their
first bytecode to the first line of their ``try``).

Holds: a real SIGINT (``signal.raise_signal``, so the PAL's real handler runs at the
interpreter's next check, in a trace function called from the replacement's frame) at any
of the replacement's first lines is raised once inside its ``try``: the
``threading.Thread`` is out of ``threading._limbo``, no thread runs, nothing is owed.

And a replacement held by a caller and called with the hook uninstalled refuses every
call the primitive refuses: keyword arguments started a thread before its parameters
were made positional only.  The messages still differ: a missing or an extra argument
gets Python's wording for the replacement's parameters, not the primitive's."""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from types import FrameType
from typing import Any

import pytest

from libos_support import thread_under_the_hook
from pylibos.libos import Hook, LibOS
from pylibos.pal import _interrupts, open_host

_REPLACEMENT = (
    Hook._start_joinable_thread if sys.version_info >= (3, 13) else Hook._start_new_thread
).__code__


def _raise_signal_at_line(n: int, fired: list[int]) -> Any:
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count == n:
                fired.append(frame.f_lineno)
                signal.raise_signal(signal.SIGINT)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is _REPLACEMENT else None

    return tracer


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_real_sigint_at_the_hooks_first_lines_is_raised_once_and_undone(n: int) -> None:
    fired: list[int] = []
    raised = 0
    with thread_under_the_hook() as thread:
        assert _interrupts.installed()
        sys.settrace(_raise_signal_at_line(n, fired))
        try:
            thread.start()
        except KeyboardInterrupt:
            raised += 1
        finally:
            sys.settrace(None)
        assert fired
        assert raised == 1, f"line {fired[0]}: the Ctrl-C was lost"
        assert not _interrupts.owed[0]
        assert thread.ident is None
        assert thread not in threading._limbo  # type: ignore[attr-defined]
        assert thread not in threading.enumerate()


def _error(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        fn(*args, **kwargs)
    except TypeError as exc:
        return f"TypeError: {exc}"
    return None


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.11/3.12: _start_new_thread")
def test_a_held_replacement_uninstalled_refuses_as_the_primitive_does() -> None:
    host = open_host("direct")
    libos = LibOS(host, "eventfd", True)
    hook = Hook(libos).install()
    start: Any = threading._start_new_thread  # type: ignore[attr-defined]
    hook.uninstall()
    ran = threading.Event()
    native: Any = _thread.start_new_thread
    try:
        assert start is not native
        differ: list[tuple[Any, ...]] = []
        calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((ran.set,), {}),
            ((ran.set, (), {}, 1), {}),
            ((), {"function": ran.set, "args": ()}),
        ]
        for args, kwargs in calls:
            # Refused alike (a TypeError, no thread); the message names the replacement,
            # as Python words it for a function's parameters, not the primitive.
            want = _error(native, args, kwargs)
            got = _error(start, args, kwargs)
            if (got is None) != (want is None):
                differ.append((args, kwargs, want, got))
        ran.wait(10.0)  # a thread the replacement started: ended before the host goes
    finally:
        libos.shutdown()
        host.shutdown()
    assert differ == [], "\n".join(
        f"{a} {k}: native {w!r}, held replacement {g!r}" for a, k, w, g in differ
    )
