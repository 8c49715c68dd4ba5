"""What ``pylibos run --stats`` imports at exit, when ``sys.path`` is the program's:
``sys.path[0]`` is the program's directory then, so a module of the program's with the
name of one pylibos imports late is the one imported."""

from __future__ import annotations

from pathlib import Path

from run_support import both


def test_a_module_of_the_program_named_rich_is_not_imported_at_exit(tmp_path: Path) -> None:
    # The program's directory holds a module of its own called rich.py, which
    # the program does not import.  Under python: stdout "main done\n", stderr empty,
    # status 0.  Under pylibos run --stats, print_stats (_cli/_run_stats.py) imports
    # rich.console at exit, which finds the program's rich.py first on sys.path: its
    # code runs ("the program's own rich.py ran" on the program's stdout), and stderr is
    #   Exception ignored in atexit callback: <function at_exit at 0x...>
    #   Traceback (most recent call last):
    #     File ".../src/pylibos/_cli/_run_stats.py", line 182, in at_exit
    #       print_stats(data, stream)
    #     File ".../src/pylibos/_cli/_run_stats.py", line 96, in print_stats
    #       from rich.console import Console
    #   ModuleNotFoundError: No module named 'rich.console'; 'rich' is not a package
    # with no statistics.  (colorsys, which rich imports, is open to the same.)
    (tmp_path / "rich.py").write_text('print("the program\'s own rich.py ran")\n')
    (tmp_path / "prog.py").write_text("print('main done')\n")
    native, under = both(tmp_path, ["prog.py"], ("--stats",))
    assert (native.returncode, native.stdout, native.stderr) == (0, "main done\n", "")
    assert (under.returncode, under.stdout) == (0, "main done\n")
    assert "Traceback" not in under.stderr
    assert "pylibos run: sgx/raw" in under.stderr
