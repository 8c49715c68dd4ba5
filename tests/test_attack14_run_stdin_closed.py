"""``pylibos run -- -`` (the program read from standard input) started with descriptor
0 closed: ``_exec_stdin`` (``src/pylibos/_cli/_program.py``) reads descriptor 0 after the
PAL and the LibOS have opened theirs, so it reads one of the PAL's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from run_support import BOUND, RUN


def _closed_stdin() -> None:
    import os

    os.close(0)


def test_dash_with_standard_input_closed(tmp_path: Path) -> None:
    # python - with descriptor 0 closed runs an empty program: status 0,
    # nothing written.  pylibos run -- - (sgx and direct/pipe alike) prints
    # "OSError: [Errno 22] Invalid argument" and exits 1: the PAL's socket took number
    # 0 (cmd_run opens the host before _run_program), and _exec_stdin's os.read(0, ...)
    # reads it (src/pylibos/_cli/_program.py; cmd_run in _run.py).
    results = [
        subprocess.run(
            command,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BOUND,
            preexec_fn=_closed_stdin,
        )
        for command in (
            [sys.executable, "-"],
            [*RUN, "--", "-"],
            [*RUN, "--pal", "direct", "--events", "pipe", "--", "-"],
        )
    ]
    native = results[0]
    assert (native.returncode, native.stdout, native.stderr) == (0, "", "")
    for under in results[1:]:
        assert (under.returncode, under.stdout, under.stderr) == (0, "", ""), under.args
