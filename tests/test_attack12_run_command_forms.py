"""The forms of python's command line that name the program, beyond ``script.py`` and
``-m module``: ``-mmodule`` (the module joined to the option, as python's getopt takes
it) and ``-`` (the program read from standard input)."""

from __future__ import annotations

from pathlib import Path

from run_support import native_and_under

SOURCE = "import sys\nprint('hi', sys.argv)\n"


def both(folder: Path, program: list[str]) -> list[tuple[int, str, str]]:
    return native_and_under(folder, program, stdin=SOURCE)


def test_dash_m_joined_to_the_module_name(tmp_path: Path) -> None:
    # `python -mprog a` runs the module prog as `python -m prog a` does: "hi
    # ['<tmp>/prog.py', 'a']", status 0 (`python -mjson.tool` is a common spelling).
    # Under pylibos run -- -mprog a: "<python>: can't open file '<tmp>/-mprog': [Errno
    # 2] No such file or directory", status 2: parse (_cli/_run.py) takes a program word
    # for -m only when it is exactly "-m", and any other word for a script path.
    (tmp_path / "prog.py").write_text(SOURCE)
    native, under = both(tmp_path, ["-mprog", "a"])
    assert native == (0, f"hi [{str(tmp_path / 'prog.py')!r}, 'a']\n", "")
    assert under == native


def test_the_program_from_standard_input_with_a_dash(tmp_path: Path) -> None:
    # (a form #7 does not name; the README lists it nowhere as a difference).
    # `python - a < prog.py` runs the program read from stdin: "hi ['-', 'a']", status
    # 0.  Under pylibos run: "<python>: can't open file '<tmp dir>/-': [Errno 2] No such
    # file or directory", status 2: parse (_cli/_run.py) knows "-m" but not "-", and
    # _missing_target looks for a file named "-".
    native, under = both(tmp_path, ["-", "a"])
    assert native == (0, "hi ['-', 'a']\n", "")
    assert under == native
