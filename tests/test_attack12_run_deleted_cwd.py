"""``pylibos run`` started in a working directory that has been removed (a shell left in
a directory another process deleted, a build tree cleaned under it): python runs a script
given by its absolute path, and a module found on ``sys.path``, from there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from run_support import BOUND, RUN

# Enter the directory $0, remove it, then run the command.
IN_REMOVED = 'cd "$0" && rmdir "$0" && exec "$@"'


def in_a_removed_directory(tmp_path: Path, name: str, cmd: list[str]) -> tuple[int, str, str]:
    folder = tmp_path / name
    folder.mkdir()
    done = subprocess.run(
        ["sh", "-c", IN_REMOVED, str(folder), *cmd], capture_output=True, text=True, timeout=BOUND
    )
    return done.returncode, done.stdout, done.stderr


def test_a_script_by_its_absolute_path_from_a_removed_directory(tmp_path: Path) -> None:
    # python prints "hi ['<tmp>/prog.py'] <tmp>/prog.py", status 0.  pylibos run
    # fails before the program runs, with its own traceback, status 1:
    #   File ".../src/pylibos/_cli/_run.py", line ..., in _missing_target
    #     path = os.path.join(os.getcwd(), target.script)
    #   FileNotFoundError: [Errno 2] No such file or directory
    # (_missing_target, _exec_script and json_target in _cli/_run.py call os.getcwd()
    # whatever the path; python joins the current directory to a relative path only.)
    script = tmp_path / "prog.py"
    script.write_text("import sys\nprint('hi', sys.argv, __file__)\n")
    native = in_a_removed_directory(tmp_path, "n", [sys.executable, str(script)])
    under = in_a_removed_directory(tmp_path, "u", [*RUN, "--", str(script)])
    assert native == (0, f"hi [{str(script)!r}] {script}\n", "")
    assert under == native
