"""``sys.excepthook`` under ``pylibos run``: the runner puts its own hook (which trims
its frames off a traceback) in place of the interpreter's, and the program sees it."""

from __future__ import annotations

from pathlib import Path

from run_support import native_and_under


def test_the_program_finds_the_interpreter_excepthook_in_place(tmp_path: Path) -> None:
    # Libraries install their own hook only when the program has not
    # (`if sys.excepthook is sys.__excepthook__: sys.excepthook = mine`), and tools
    # check it to know whether a report will be the interpreter's.  Under python the
    # program prints "True builtin_function_or_method".  Under pylibos run it prints
    # "False _TrimmedExcepthook": _run_program (_cli/_run.py) sets sys.excepthook =
    # _TrimmedExcepthook(sys.excepthook) before the program's first line, and leaves
    # sys.__excepthook__ as it was.
    (tmp_path / "prog.py").write_text(
        "import sys\nprint(sys.excepthook is sys.__excepthook__, type(sys.excepthook).__name__)\n"
    )
    native, under = native_and_under(tmp_path, ["prog.py"])
    assert native == (0, "True builtin_function_or_method\n", "")
    assert under == native


def test_an_uncaught_exception_after_the_program_restores_the_interpreter_hook(
    tmp_path: Path,
) -> None:
    # `sys.excepthook = sys.__excepthook__` is how a program undoes a hook some
    # library installed (rich, IPython, a crash reporter).  Under python the uncaught
    # ValueError is reported as 'Traceback (most recent call last):\n  File
    # "<tmp>/prog.py", line 3, in <module>\n    raise ValueError("x")\nValueError: x',
    # status 1.  Under pylibos run the same report starts with eleven more lines, the
    # runner's frames: "<frozen runpy>" _run_module_as_main and _run_code,
    # pylibos/__main__.py <module> "sys.exit(main())", _cli/_main.py main, _cli/_run.py
    # cmd_run, _run_program and _exec_script "exec(code, main.__dict__)": only the
    # _TrimmedExcepthook the runner put in sys.excepthook trims them, and
    # sys.__excepthook__ is the interpreter's own.
    (tmp_path / "prog.py").write_text(
        "import sys\nsys.excepthook = sys.__excepthook__\nraise ValueError('x')\n"
    )
    native, under = native_and_under(tmp_path, ["prog.py"])
    assert native[0] == 1 and native[2].endswith("ValueError: x\n")
    assert under == native
