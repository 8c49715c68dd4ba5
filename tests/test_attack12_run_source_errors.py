"""A script python cannot decode: python reads it with its file tokenizer and reports in
that tokenizer's words; ``pylibos run`` compiles the bytes it read (``compile(data,
...)`` in ``_exec_script``, _cli/_run.py), whose messages and locations differ.  The
outputs quoted are Python 3.11's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUN = [sys.executable, "-m", "pylibos", "run", "--"]
BOUND = 30.0


def both(folder: Path, source: bytes) -> list[tuple[int, str, str]]:
    (folder / "prog.py").write_bytes(source)
    results = []
    for cmd in ([sys.executable, "prog.py"], [*RUN, "prog.py"]):
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=BOUND)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def test_a_script_that_is_not_utf8_without_a_declaration(tmp_path: Path) -> None:
    # FAILS.  python: "SyntaxError: Non-UTF-8 code starting with '\xff' in file
    # <tmp>/prog.py on line 1, but no encoding declared; see
    # https://peps.python.org/pep-0263/ for details", status 1.  pylibos run:
    #   File "<tmp>/prog.py", line 1
    #     x = "\ufffd"
    #            ^
    # SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xff in position 0:
    # invalid start byte
    native, under = both(tmp_path, b'x = "\xff"\n')
    assert native[0] == 1 and "SyntaxError" in native[2]
    assert under == native


def test_a_script_with_a_null_byte(tmp_path: Path) -> None:
    # FAILS.  python: '  File "<tmp>/prog.py", line 1\n    print(1)\nSyntaxError: source
    # code cannot contain null bytes', status 1.  pylibos run: "SyntaxError: source code
    # string cannot contain null bytes", with no location.
    native, under = both(tmp_path, b"print(1)\x00\n")
    assert native[0] == 1 and "null bytes" in native[2]
    assert under == native


def test_a_script_whose_bom_and_declaration_disagree(tmp_path: Path) -> None:
    # FAILS.  python: "SyntaxError: encoding problem: iso-8859-1 with BOM", status 1.
    # pylibos run: the same line after '  File "<tmp>/prog.py", line 0'.
    native, under = both(tmp_path, b"\xef\xbb\xbf# coding: latin-1\nprint(1)\n")
    assert native[0] == 1 and "encoding problem" in native[2]
    assert under == native
