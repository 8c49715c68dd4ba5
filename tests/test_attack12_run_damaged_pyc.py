"""A damaged compiled program (``python app.pyc``): python reads the header and the code
object itself and reports what is wrong in its own words; ``pylibos run``'s
``_exec_script`` (_cli/_program.py) slices the bytes, calls ``marshal.loads`` and ``exec``,
and lets their exceptions through, which say something else."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path

import pytest

from run_support import BOUND, RUN

MAGIC = importlib.util.MAGIC_NUMBER
HEADER = MAGIC + bytes(12)  # the magic number, the flags, the source's stamp

# (python's last line, pylibos run's last line), both with status 1 and no traceback.
CASES = {
    # The code object cannot be read:
    # python "RuntimeError: Bad code object in .pyc file"; pylibos run "ValueError: bad
    # marshal data (unknown type code)".
    "bad-marshal-data": HEADER + b"\xff\xff",
    # The header is cut short:
    # python "EOFError: EOF read where not expected"; pylibos run "EOFError: EOF read
    # where object expected".
    "short-header": MAGIC + bytes(4),
    # What is marshalled is not a code object:
    # python "RuntimeError: Bad code object in .pyc file"; pylibos run "TypeError:
    # exec() arg 1 must be a string, bytes or code object".
    "not-a-code-object": HEADER + marshal.dumps(5),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_damaged_pyc_is_reported_as_python_reports_it(tmp_path: Path, name: str) -> None:
    # (each case; the outputs in CASES).
    (tmp_path / "app.pyc").write_bytes(CASES[name])
    results = []
    for cmd in ([sys.executable, "app.pyc"], [*RUN, "--", "app.pyc"]):
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=BOUND)
        results.append((done.returncode, done.stdout, done.stderr))
    native, under = results
    assert native[0] == 1
    assert under == native
