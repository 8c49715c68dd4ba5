"""``pylibos run --stats`` writes to the standard error pylibos was started with, but
it keeps only the descriptor's number (2): a program that puts another file at that
number with ``os.dup2`` gets pylibos's statistics in that file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from run_support import BOUND, RUN, both


def test_stats_stay_off_stdout_when_the_program_dup2s_stdout_over_descriptor_2(
    tmp_path: Path,
) -> None:
    # A program that merges its streams at the descriptor level (`os.dup2(1, 2)`,
    # as `2>&1` does, common before exec'ing or in daemons) prints "out" on stdout under
    # python, status 0, and nothing else.  Under `pylibos run --stats` its stdout is
    # "out\npylibos run: sgx/raw, 0 threads created through the LibOS, 17 host calls, exit
    # status 0\nhost calls by kind: ...\nprojected SGX cost at 10,000 cycles per host
    # call: ...": RunState.stderr_fd (_cli/_run_stats.py, _stderr_descriptor) keeps the
    # number 2 rather than a duplicate of the descriptor taken at start, and _stderr()
    # opens that number at exit, which is now the program's stdout.
    (tmp_path / "prog.py").write_text("import os\nos.dup2(1, 2)\nprint('out')\n")
    native, under = both(tmp_path, ["prog.py"], ("--stats",))
    assert (native.returncode, native.stdout, native.stderr) == (0, "out\n", "")
    assert (under.returncode, under.stdout) == (0, "out\n")
    assert "pylibos run:" in under.stderr


def test_stats_stay_out_of_a_file_the_program_opened_at_descriptor_2(tmp_path: Path) -> None:
    # A program that closes its standard error and opens a log file, which the
    # system gives the lowest free number, 2 (a daemon's usual start), keeps the file
    # open to the end.  Under python log.txt holds "data\n".  Under pylibos run --stats
    # it holds "data\npylibos run: sgx/raw, 0 threads created through the LibOS, ...":
    # the statistics are written into the program's own file (the same cause: the
    # number 2 kept, not the descriptor).
    (tmp_path / "prog.py").write_text(
        "import os\nos.close(2)\nlog = open('log.txt', 'w')\nlog.write('data\\n')\nlog.flush()\n"
    )
    contents = []
    for cmd in ([sys.executable, "prog.py"], [*RUN, "--stats", "--", "prog.py"]):
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=BOUND)
        assert done.returncode == 0
        contents.append((tmp_path / "log.txt").read_text())
    assert contents == ["data\n", "data\n"]
