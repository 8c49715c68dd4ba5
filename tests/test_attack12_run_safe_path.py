"""``sys.path[0]`` under ``pylibos run`` when the environment asks for a safe path
(``PYTHONSAFEPATH``, Python 3.11+): python then puts no directory of the program in
front of ``sys.path``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from run_support import BOUND, RUN


def test_pythonsafepath_keeps_the_program_directory_off_sys_path(tmp_path: Path) -> None:
    # With PYTHONSAFEPATH=1, `python prog.py` prepends nothing: sys.path is
    # ['<prefix>/lib/python311.zip', '<prefix>/lib/python3.11', ...], so a file beside
    # the script (here shadow.py) is not importable; the program prints the stdlib zip's
    # path and "False", status 0.  Under pylibos run the program prints "<tmp dir>" and
    # "True": _set_path0 (_cli/_run.py) writes the script's directory over sys.path[0]
    # whatever sys.flags.safe_path says, which also drops the stdlib zip's entry that
    # was there.  (`-m` the same: the current directory replaces that entry.)
    (tmp_path / "shadow.py").write_text("")
    (tmp_path / "prog.py").write_text(
        "import importlib.util, sys\n"
        "print(sys.path[0])\n"
        "print(importlib.util.find_spec('shadow') is not None)\n"
    )
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    results = []
    for cmd in ([sys.executable, "prog.py"], [*RUN, "--", "prog.py"]):
        done = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BOUND
        )
        results.append((done.returncode, done.stdout, done.stderr))
    native, under = results
    assert native[0] == 0 and native[1].endswith("False\n")
    assert under == native
