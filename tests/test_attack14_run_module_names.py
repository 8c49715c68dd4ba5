"""Modules of the program's own, in its directory, named as modules pylibos imports:
``python -m pylibos run`` started from the program's directory imports ``_cli/_run.py``
(and with it ``argparse``, ``dataclasses``, ...) before ``cmd_run`` takes python's entry
for the current directory off ``sys.path``; and ``--stats`` now imports ``rich`` at
start, so the program's own ``rich.py`` is no longer the ``rich`` it imports."""

from __future__ import annotations

import sys
from pathlib import Path

from run_support import RUN, both, side_by_side


def test_a_program_with_its_own_argparse_started_from_its_directory(tmp_path: Path) -> None:
    # The program's directory holds argparse.py (NAME = 'mine') and prog.py
    # (`import argparse; print(getattr(argparse, 'NAME', 'std'))`).  python prog.py
    # prints "mine", status 0.  python -m pylibos run -- prog.py, started there, dies
    # before the program runs: a traceback through pylibos/__main__.py, _main.py's
    # `from ._run import cmd_run` and _run.py's `class _Parser(argparse.ArgumentParser)`,
    # "AttributeError: module 'argparse' has no attribute 'ArgumentParser'": the
    # launch's entry (the current directory) is removed in cmd_run
    # (src/pylibos/_cli/_run.py), after _main.py has imported _run.py and its modules.
    (tmp_path / "argparse.py").write_text("NAME = 'mine'\n")
    (tmp_path / "prog.py").write_text("import argparse\nprint(getattr(argparse, 'NAME', 'std'))\n")
    native, under = both(tmp_path, ["prog.py"])
    assert (native.returncode, native.stdout) == (0, "mine\n")
    assert "Traceback" not in under.stderr, under.stderr
    assert under.returncode == 0


def test_the_program_rich_is_its_own_with_stats(tmp_path: Path) -> None:
    # The program's directory holds rich.py (NAME = 'mine'); prog.py prints
    # getattr(rich, 'NAME', 'std').  python prints "mine"; pylibos run -- prog.py prints
    # "mine"; pylibos run --stats -- prog.py prints "std": prepare_output
    # (src/pylibos/_cli/_run_stats.py) imports rich before the program runs, so the
    # program's `import rich` finds the library in sys.modules.  The option changes
    # which module the program gets; the README lists no such difference.
    (tmp_path / "rich.py").write_text("NAME = 'mine'\n")
    (tmp_path / "prog.py").write_text("import rich\nprint(getattr(rich, 'NAME', 'std'))\n")
    prog = str(tmp_path / "prog.py")
    native, plain, stats = side_by_side(
        [[sys.executable, "prog.py"], [*RUN, "--", prog], [*RUN, "--stats", "--", prog]],
        tmp_path,
    )
    assert (native.returncode, native.stdout) == (0, "mine\n")
    assert (plain.returncode, plain.stdout) == (0, "mine\n")
    assert (stats.returncode, stats.stdout) == (0, "mine\n")
