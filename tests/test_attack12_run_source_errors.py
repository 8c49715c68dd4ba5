"""A script python cannot decode: python reads it with its file tokenizer and reports in
that tokenizer's words; ``pylibos run`` compiles the bytes it read (``compile(data,
...)`` in ``_exec_script``, _cli/_program.py), whose messages and locations differ.  The
outputs quoted are Python 3.11's.

A known difference (README, "Running a program"), not fixed: no Python API reads a file
with the interpreter's file tokenizer (``runpy.run_path`` and ``importlib`` compile the
bytes too), and its messages change from one version to the next.  Held here: the same
status (1), no output on stdout, a SyntaxError both ways, and under ``pylibos run`` the
report ``compile()`` gives for those bytes and that file name, without a traceback."""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path

from run_support import BOUND, RUN


def compile_report(path: Path, source: bytes) -> str:
    """What the interpreter prints for the exception ``compile()`` raises on ``source``."""
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return "".join(traceback.format_exception_only(type(exc), exc))
    raise AssertionError("the source compiles")


def held(folder: Path, source: bytes, python_says: str) -> None:
    native, under = both(folder, source)
    assert native[:2] == under[:2] == (1, "")
    assert python_says in native[2].splitlines()[-1], native[2]
    assert under[2] == compile_report(folder / "prog.py", source)
    assert under[2].splitlines()[-1].startswith("SyntaxError: ")


def both(folder: Path, source: bytes) -> list[tuple[int, str, str]]:
    (folder / "prog.py").write_bytes(source)
    results = []
    for cmd in ([sys.executable, "prog.py"], [*RUN, "--", "prog.py"]):
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=BOUND)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def test_a_script_that_is_not_utf8_is_reported_as_compile_reports_it(tmp_path: Path) -> None:
    # python: "SyntaxError: Non-UTF-8 code starting with '\xff' in file
    # <tmp>/prog.py on line 1, but no encoding declared; see
    # https://peps.python.org/pep-0263/ for details", status 1.  pylibos run:
    #   File "<tmp>/prog.py", line 1
    #     x = "\ufffd"
    #            ^
    # SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xff in position 0:
    # invalid start byte
    held(tmp_path, b'x = "\xff"\n', "SyntaxError: Non-UTF-8 code starting with")


def test_a_script_with_a_null_byte_is_reported_as_compile_reports_it(tmp_path: Path) -> None:
    # python: '  File "<tmp>/prog.py", line 1\n    print(1)\nSyntaxError: source
    # code cannot contain null bytes', status 1.  pylibos run: "SyntaxError: source code
    # string cannot contain null bytes", with no location.
    held(tmp_path, b"print(1)\x00\n", "null bytes")


def test_a_bom_and_declaration_that_disagree_are_reported_as_compile_reports_it(
    tmp_path: Path,
) -> None:
    # python: "SyntaxError: encoding problem: iso-8859-1 with BOM", status 1.
    # pylibos run: the same line after '  File "<tmp>/prog.py", line 0'.
    held(tmp_path, b"\xef\xbb\xbf# coding: latin-1\nprint(1)\n", "encoding problem")
