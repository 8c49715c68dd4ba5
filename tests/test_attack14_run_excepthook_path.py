"""An exception escaping the program under ``pylibos run``: the runner puts
``_ReportOnce`` in ``sys.excepthook`` (``_run_program`` in ``src/pylibos/_cli/_run.py``)
and trims the traceback it hands on: what the interpreter records itself, a program that
took the hook away, a hook that fails."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from libos_support import documented
from run_support import both


def _both(tmp_path: Path, source: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    (tmp_path / "prog.py").write_text(source)
    return both(tmp_path, ["prog.py"])


def test_sys_last_traceback_holds_the_program_frames_only(tmp_path: Path) -> None:
    # An atexit handler prints sys.last_traceback (set by the interpreter for
    # the uncaught exception).  python prints the two frames of prog.py; pylibos run
    # prints first runpy's, pylibos/__main__.py's, _main.py's main, _run.py's cmd_run,
    # _run_program and _program.py's _exec_script, then prog.py's.  The interpreter takes
    # sys.last_traceback from the traceback as raised, before the hook runs;
    # _ReportOnce (src/pylibos/_cli/_program.py) trims only exc.__traceback__ and the
    # hook's argument.
    native, under = _both(
        tmp_path,
        "import atexit, sys, traceback\n"
        "def show():\n"
        "    print(''.join(traceback.format_tb(sys.last_traceback)), end='')\n"
        "atexit.register(show)\n"
        "def f():\n"
        "    raise ValueError('x')\n"
        "f()\n",
    )
    assert native.returncode == 1
    assert native.stdout.count("File ") == 2, native.stdout
    assert (under.returncode, under.stdout) == (native.returncode, native.stdout)


def test_a_program_that_deleted_sys_excepthook(tmp_path: Path) -> None:
    # `del sys.excepthook; raise ValueError('boom')`.  python prints
    # "sys.excepthook is missing" and the ValueError's two-line traceback, status 1.
    # pylibos run prints that, then the ValueError with _run.py's _run_program and _program.py's
    # _exec_script frames, "During handling of the above exception, another exception
    # occurred:" and an AttributeError ("module 'sys' has no attribute 'excepthook'")
    # from _run_program (src/pylibos/_cli/_run.py: `sys.excepthook = _ReportOnce(state,
    # sys.excepthook, ...)` reads the missing hook).
    native, under = _both(tmp_path, "import sys\ndel sys.excepthook\nraise ValueError('boom')\n")
    assert native.returncode == 1
    assert native.stderr.startswith("sys.excepthook is missing\nTraceback"), native.stderr
    assert (under.returncode, under.stderr) == (native.returncode, native.stderr)


def test_a_hook_that_raises_the_exception_it_was_handed_a_documented_difference(
    tmp_path: Path,
) -> None:
    # The program's hook is `def hook(t, v, tb): raise v`.  python prints
    # "Error in sys.excepthook:" and the ValueError from <module> and f (no frame of the
    # hook), then "Original exception was:" and the same.  pylibos run prints both with
    # a first frame `File "prog.py", line 3, in hook / raise v`: _ReportOnce.__call__
    # (src/pylibos/_cli/_program.py) trims only its own frame off the failure and prints the
    # original with exc's __traceback__, which the hook's raise has grown.
    native, under = _both(
        tmp_path,
        "import sys\n"
        "def hook(t, v, tb):\n"
        "    raise v\n"
        "sys.excepthook = hook\n"
        "def f():\n"
        "    raise ValueError('boom')\n"
        "f()\n",
    )
    assert native.returncode == 1
    # A documented difference (README, "Running a program"): the two blocks' tracebacks
    # are not python's (which differ between 3.11 and 3.12); the report's shape, the
    # exception and the status are.
    _same_shape(native, under)


def test_a_hook_that_raises_the_exception_without_its_traceback_a_documented_difference(
    tmp_path: Path,
) -> None:
    # `def hook(t, v, tb): raise v.with_traceback(None)`.  python prints
    # "Error in sys.excepthook:\nValueError: boom\n\nOriginal exception was:\nValueError:
    # boom\n" (no traceback either time).  pylibos run prints a traceback with the
    # hook's frame twice (_ReportOnce.__call__, src/pylibos/_cli/_program.py).
    native, under = _both(
        tmp_path,
        "import sys\n"
        "def hook(t, v, tb):\n"
        "    raise v.with_traceback(None)\n"
        "sys.excepthook = hook\n"
        "raise ValueError('boom')\n",
    )
    assert native.returncode == 1
    # A documented difference, as above.
    _same_shape(native, under)


def _same_shape(native: Any, under: Any) -> None:
    assert under.returncode == native.returncode == 1
    for done in (native, under):
        assert done.stderr.startswith("Error in sys.excepthook:\n"), done.stderr
        assert "\nOriginal exception was:\n" in done.stderr
        assert done.stderr.endswith("ValueError: boom\n")
    assert documented("a hook that raises the very exception it was handed", "README.md")
