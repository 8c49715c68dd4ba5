"""``pylibos run -- -m package.module``: the parent package is imported as part of
running the program, so its ``__init__`` must run as under ``python -m``: with the
program's ``sys.argv`` and under the LibOS (its threads and epolls through the hook); and
the messages for a module that cannot be run are python's."""

from __future__ import annotations

from pathlib import Path

import pytest

from run_support import native_and_under


def test_the_parent_package_runs_with_the_program_argv_and_under_the_libos(
    tmp_path: Path,
) -> None:
    # `python -m tool.cli a b`: tool/__init__.py runs with sys.argv ==
    # ['-m', 'a', 'b'], and the select.epoll it sees is the one tool/cli.py sees.  Under
    # pylibos run, tool/__init__.py runs inside cmd_run's _missing_target
    # (importlib.util.find_spec imports the parents, _cli/_run.py) before the LibOS is
    # booted and installed and before sys.argv is set: it sees sys.argv ==
    # ['.../pylibos/__main__.py', 'run', '--', '-m', 'tool.cli', 'a', 'b'] and the
    # interpreter's own select.epoll (and threading's own start): whatever the package
    # sets up at import (a thread pool, a selector) bypasses the LibOS.
    tool = tmp_path / "tool"
    tool.mkdir()
    (tool / "__init__.py").write_text(
        "import select, sys\nprint('init', sys.argv)\nEPOLL = select.epoll\n"
    )
    (tool / "cli.py").write_text(
        "import select, sys, tool\nprint('cli', sys.argv[1:], tool.EPOLL is select.epoll)\n"
    )
    native, under = native_and_under(tmp_path, ["-m", "tool.cli", "a", "b"])
    assert native == (0, "init ['-m', 'a', 'b']\ncli ['a', 'b'] True\n", "")
    assert under == native


@pytest.mark.parametrize("module", ["plain.sub", ".relative"])
def test_a_module_that_cannot_be_found_is_reported_as_python_does(
    tmp_path: Path, module: str
) -> None:
    # python says, status 1:
    #   plain.sub: "<python>: Error while finding module specification for 'plain.sub'
    #              (ModuleNotFoundError: __path__ attribute not found on 'plain' while
    #              trying to find 'plain.sub')"
    #   .relative: "<python>: Relative module names not supported"
    # pylibos run's _missing_target (_cli/_run.py) swallows the ImportError / ValueError
    # of find_spec and says "<python>: No module named plain.sub" / "... .relative".
    (tmp_path / "plain.py").write_text("x = 1\n")
    native, under = native_and_under(tmp_path, ["-m", module])
    assert native[0] == 1
    assert under == native
