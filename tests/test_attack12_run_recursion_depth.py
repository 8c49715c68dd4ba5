"""How deep a program can recurse under ``pylibos run``: the runner's frames below the
program's ``<module>`` (listed in the README as a known difference for what a stack
shows) also count against ``sys.getrecursionlimit()``, so the program's own depth is
smaller than under python and a computation that fits natively fails."""

from __future__ import annotations

from pathlib import Path

from run_support import native_and_under


def test_the_program_recursion_depth_is_smaller_by_the_runner_frames(tmp_path: Path) -> None:
    # A known difference (README, "Running a program"), not fixed: the runner's frames
    # count against the recursion limit, and raising the limit for them would show the
    # program another sys.getrecursionlimit().
    # With sys.setrecursionlimit(40), the first depth at which the program's
    # recursion fails: python prints 39 (script) and 36 (-m, under runpy's frames);
    # pylibos run prints 30 and 28.  The nine frames of python -m pylibos, main,
    # cmd_run, _run_program and _exec_script (_cli/_run.py) are the program's stack
    # too: a recursion of depth 30 under limit 40 is RecursionError and status 1 under
    # pylibos run, 0 under python.  Held here: the depth is smaller by the runner's
    # frames (at most ten), and by nothing else.
    (tmp_path / "deep.py").write_text(
        "import sys\n"
        "sys.setrecursionlimit(40)\n"
        "def r(n):\n"
        "    return 0 if n == 0 else 1 + r(n - 1)\n"
        "for n in range(60):\n"
        "    try:\n"
        "        r(n)\n"
        "    except RecursionError:\n"
        "        print(n)\n"
        "        break\n"
    )
    for program in (["deep.py"], ["-m", "deep"]):
        native, under = native_and_under(tmp_path, program)
        assert native[0] == under[0] == 0 and native[2] == under[2] == "", program
        missing = int(native[1]) - int(under[1])
        assert 0 < missing <= 10, (program, native, under)
