"""The ``__main__`` module a program runs in, as ``python`` makes it: its names, its
``__file__`` and code filenames, and the kinds of file ``python`` runs."""

from __future__ import annotations

import py_compile
from pathlib import Path

from run_support import native_and_under


def test_main_has_the_names_python_gives_it(tmp_path: Path) -> None:
    # Under python 3.11 the __main__ of a script (and of -m, and of a directory)
    # starts with __annotations__ = {} among its dunder names, so `print(__annotations__)`
    # prints {}.  pylibos run's _exec_script / _exec_module (_cli/_run.py) make the
    # module with types.ModuleType("__main__"), which has no __annotations__: the same
    # line is NameError: name '__annotations__' is not defined, status 1.
    (tmp_path / "show.py").write_text(
        "print(sorted(k for k in globals() if k.startswith('__')))\nprint(__annotations__)\n"
    )
    native, under = native_and_under(tmp_path, ["show.py"])
    assert under == native


def test_file_of_a_path_with_dot_segments_is_as_given(tmp_path: Path) -> None:
    # `python ./sub/w.py` (or sub/../sub/w.py, or a doubled slash) gives
    # __file__ == "<cwd>/./sub/w.py": the current directory joined to the path as typed,
    # not normalised; tracebacks and code filenames show the same.  pylibos run's
    # _exec_script uses os.path.abspath, which normalises: "<cwd>/sub/w.py".
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.py").write_text(
        "import sys\nprint(__file__, sys._getframe().f_code.co_filename, sys.argv[0])\n"
    )
    native, under = native_and_under(tmp_path, ["./sub/w.py"])
    assert under == native


def test_a_compiled_file_runs(tmp_path: Path) -> None:
    # python runs a .pyc file given as the script (sourceless distribution):
    # `python app.pyc` prints "compiled __main__", status 0.  pylibos run's
    # _exec_script reads the file as source and compiles it: "SyntaxError: source code
    # string cannot contain null bytes", status 1.
    (tmp_path / "app.py").write_text("print('compiled', __name__)\n")
    py_compile.compile(str(tmp_path / "app.py"), cfile=str(tmp_path / "app.pyc"), doraise=True)
    native, under = native_and_under(tmp_path, ["app.pyc"])
    assert native == (0, "compiled __main__\n", "")
    assert under == native


def test_a_directory_program_finds_its_files_after_chdir(tmp_path: Path) -> None:
    # `python app` (a directory with __main__.py) puts the directory's absolute
    # path in sys.path[0] ("<cwd>/app"), so a program can os.chdir and still open its own
    # files by sys.path[0] (the usual "directory of the program" idiom).  pylibos run's
    # _set_path0 (_cli/_run.py) puts the path as typed, "app": after os.chdir("/"),
    # open(os.path.join(sys.path[0], "data.txt")) is FileNotFoundError, status 1.  (A
    # zip file is the same, and its traceback then names "app.zip/__main__.py" where
    # python names "<cwd>/app.zip/__main__.py".)
    app = tmp_path / "app"
    app.mkdir()
    (app / "data.txt").write_text("found\n")
    (app / "__main__.py").write_text(
        "import os, sys\nos.chdir('/')\n"
        "print(open(os.path.join(sys.path[0], 'data.txt')).read(), end='')\n"
    )
    native, under = native_and_under(tmp_path, ["app"])
    assert native == (0, "found\n", "")
    assert under == native
