"""A program python reads from something that is not a regular file: ``/dev/stdin``,
or a process substitution (``python <(...)``, a ``/dev/fd/N`` path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from run_support import BOUND, RUN, native_and_under

SOURCE = "import sys\nprint('hi', sys.argv)\n"


def both(folder: Path, program: list[str]) -> list[tuple[int, str, str]]:
    return native_and_under(folder, program, stdin=SOURCE)


def test_a_script_read_from_dev_stdin(tmp_path: Path) -> None:
    # `python /dev/stdin a < prog.py` (or a FIFO) runs
    # the source it reads: "hi ['/dev/stdin', 'a']", status 0.  Under pylibos run:
    # "<python>: can't find '__main__' module in '/proc/<pid>/fd'", status 1: the
    # runner takes any path that is not a regular file (os.path.isfile false) for a
    # directory or zip program (_run_program in _cli/_run.py) and runs __main__ from
    # sys.path[0], which _set_path0 made the directory of realpath('/dev/stdin').
    native, under = both(tmp_path, ["/dev/stdin", "a"])
    assert native == (0, "hi ['/dev/stdin', 'a']\n", "")
    assert under == native


def test_a_script_from_a_process_substitution(tmp_path: Path) -> None:
    # `python <(cat prog.py)`: bash hands the program as /dev/fd/N, an inherited
    # pipe.  python prints "hi ['/dev/fd/N']", status 0; pylibos run: "<python>: can't
    # find '__main__' module in '/proc/<pid>/fd'", status 1 (the same cause as above;
    # _is_zip also reads the pipe, looking for a zip file's signature).
    results = []
    for cmd in ([sys.executable], [*RUN, "--"]):
        r, w = os.pipe()
        try:
            os.write(w, SOURCE.encode())
            os.close(w)
            w = -1
            done = subprocess.run(
                [*cmd, f"/dev/fd/{r}"],
                cwd=tmp_path,
                pass_fds=(r,),
                capture_output=True,
                text=True,
                timeout=BOUND,
            )
        finally:
            os.close(r)
            if w != -1:
                os.close(w)
        results.append((done.returncode, done.stdout.replace(str(r), "N"), done.stderr))
    native, under = results
    assert native == (0, "hi ['/dev/fd/N']\n", "")
    assert under == native
