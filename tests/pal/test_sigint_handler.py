"""The PAL's SIGINT handler is invisible to the program, and re-installing the default
handler keeps critical sections deferring.

A program sees ``signal.default_int_handler`` where it would natively (asyncio's runner
installs its own Ctrl-C handling only over that one), and a program that installs the
default handler itself (``signal.signal(SIGINT, signal.default_int_handler)``, or putting
back what ``getsignal`` gave it) must not leave the LibOS's critical sections open to a
KeyboardInterrupt.  The signals here are real (``signal.raise_signal``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pylibos.pal import _interrupts, open_host

BOUND = 30.0


def _deferred_in_a_section() -> bool:
    """Raise a real SIGINT inside a critical section: True if it came as the section
    ended (deferred), False if it came inside."""
    entered = _interrupts.enter()
    try:
        try:
            signal.raise_signal(signal.SIGINT)
            for _ in range(100):  # bytecodes where a handler that does not defer raises
                pass
        except KeyboardInterrupt:
            _interrupts.leave(entered)
            return False
        _interrupts.leave(entered)
    except KeyboardInterrupt:
        return True
    pytest.fail("the SIGINT never arrived")


def test_the_program_sees_the_default_handler_and_sections_still_defer() -> None:
    with open_host("direct"):
        if _interrupts._signal_getsignal(signal.SIGINT) is not _interrupts._on_sigint:
            pytest.skip("another handler is in place in this interpreter")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert _deferred_in_a_section()
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        assert previous is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert _deferred_in_a_section(), "the program's default handler opened the section"
        seen: list[int] = []
        saved = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
        try:
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            signal.raise_signal(signal.SIGINT)
            assert seen == [signal.SIGINT]  # the program's own handler runs, as natively
        finally:
            assert signal.signal(signal.SIGINT, saved) is not signal.default_int_handler
        assert _deferred_in_a_section(), "putting back the saved handler opened the section"


def test_after_shutdown_the_signal_module_is_as_it_was() -> None:
    """In a fresh interpreter (this one has hosts other tests never shut down): the
    handler is the PAL's while a host is open, yet the program sees the default one;
    after shutdown the functions and the handler are the originals again."""
    code = (
        "import signal, _signal; from pylibos.pal import open_host; "
        "d = signal.default_int_handler; before = _signal.getsignal(signal.SIGINT) is d; "
        "f = (signal.signal, signal.getsignal); h = open_host('direct'); "
        "a = _signal.getsignal(signal.SIGINT) is not d; "
        "b = signal.getsignal(signal.SIGINT) is d; h.shutdown(); "
        "c = (signal.signal, signal.getsignal) == f; "
        "e = _signal.getsignal(signal.SIGINT) is d; print(before, a, b, c, e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND, check=True
    )
    assert out.stdout.split() == ["True"] * 5


def test_under_pylibos_run_the_program_sees_its_handlers_as_under_python(tmp_path: Path) -> None:
    program = tmp_path / "handlers.py"
    program.write_text(
        "import signal\n"
        "print(signal.getsignal(signal.SIGINT))\n"
        "mine = lambda signum, frame: None\n"
        "print(signal.signal(signal.SIGINT, mine))\n"
        "print(signal.getsignal(signal.SIGINT) is mine)\n"
        "print(signal.signal(signal.SIGINT, signal.default_int_handler) is mine)\n"
        "print(signal.getsignal(signal.SIGINT))\n"
    )
    outs = [
        subprocess.run(
            [*prefix, str(program)], capture_output=True, text=True, timeout=BOUND, check=True
        ).stdout
        for prefix in ([sys.executable], [sys.executable, "-m", "pylibos", "run", "--"])
    ]
    assert outs[1] == outs[0]
