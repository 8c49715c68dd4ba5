"""``pylibos run --json F``: a path that cannot be written is refused up front, as one
``ERROR:`` line with status 2 and the program not run (as a missing directory is), not
found out at exit after the program ran, with the program's status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from run_support import RUN, python


@pytest.mark.parametrize("where", ["a-directory", "empty"])
def test_a_json_path_that_cannot_be_written_is_refused_up_front(tmp_path: Path, where: str) -> None:
    # --json naming an existing directory: the program runs ("ran" on stdout),
    # then at exit "ERROR: cannot write <dir>: Is a directory" on stderr, status 0.
    # check_writable (_cli/_options.py) looks only at the parent directory.
    # --json "": the program runs, status 0, and no statistics are written anywhere, with
    # no message: check_writable and at_exit (_cli/_run_stats.py) both treat "" as
    # "no --json".
    (tmp_path / "x.py").write_text("print('ran')\n")
    target = {"a-directory": str(tmp_path), "empty": ""}[where]
    done = python([*RUN, "--json", target, "--", "x.py"], tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("ERROR: ") and done.stderr.count("\n") == 1


def test_a_relative_json_path_is_where_pylibos_was_started(tmp_path: Path) -> None:
    # `pylibos run --json s.json -- prog.py` where the program does
    # os.chdir("sub"): the statistics land in sub/s.json, not in ./s.json where the user
    # asked (and where check_writable looked).  at_exit (_cli/_run_stats.py) opens
    # options.json as given, relative to the program's cwd at exit.
    (tmp_path / "sub").mkdir()
    (tmp_path / "prog.py").write_text("import os\nos.chdir('sub')\nprint('moved')\n")
    done = python([*RUN, "--json", "s.json", "--", "prog.py"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "moved\n", "")
    assert (tmp_path / "s.json").exists()
    assert not (tmp_path / "sub" / "s.json").exists()


def test_json_exit_code_is_the_status_the_process_exits_with(tmp_path: Path) -> None:
    # (minor).  sys.exit(2**70): the process exits 255 (the interpreter's
    # conversion of a code past a C long fails, and it exits -1), under python and
    # under pylibos run alike; --json records "exit_code": 0: _exit_status
    # (_cli/_run.py) takes code & 0xFF.
    (tmp_path / "big.py").write_text("import sys\nsys.exit(2**70)\n")
    out = tmp_path / "s.json"
    done = python([*RUN, "--json", str(out), "--", "big.py"], tmp_path)
    assert done.returncode == 255
    assert json.loads(out.read_text())["exit_code"] == done.returncode
