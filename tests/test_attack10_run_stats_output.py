"""``pylibos run --stats/--json`` at exit, whatever the program did with its streams:
pylibos's statistics never reach the program's stdout, and ``--json`` is written even
when the statistics cannot be printed.  The statistics are printed at exit, after the
program's own code, when ``sys.stderr`` is whatever the program left there."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from run_support import BOUND, RUN


def run(folder: Path, options: list[str], source: str) -> subprocess.CompletedProcess[str]:
    (folder / "prog.py").write_text(source)
    return subprocess.run(
        [*RUN, *options, "--", "prog.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=BOUND,
    )


def test_stats_stay_off_stdout_when_the_program_points_stderr_at_it(tmp_path: Path) -> None:
    # A program that merges its streams with `sys.stderr = sys.stdout` (common in
    # scripts and test runners) prints "out" on stdout under python.  Under pylibos run
    # --stats, stdout is "out\npylibos run: sgx/raw, 0 threads created ...\nhost calls by
    # kind: ...\nprojected SGX cost ...": print_stats (_cli/_run_stats.py) prints through
    # rich's Console(stderr=True), which writes to whatever sys.stderr is at exit, not to
    # the process's standard error.
    done = run(tmp_path, ["--stats"], "import sys\nsys.stderr = sys.stdout\nprint('out')\n")
    assert (done.returncode, done.stdout) == (0, "out\n")
    assert "pylibos run:" in done.stderr


def test_json_is_written_when_the_program_closed_stderr(tmp_path: Path) -> None:
    # A program that closes sys.stderr (a detaching daemon) exits 0 under python.
    # Under pylibos run --stats --json s.json it also exits 0, but s.json is never
    # written, and nothing says so: at_exit (_cli/_run_stats.py) prints the statistics
    # first, that raises ValueError (I/O operation on closed file) and the JSON write and
    # the LibOS's shutdown after it are skipped.
    out = tmp_path / "s.json"
    done = run(
        tmp_path,
        ["--stats", "--json", str(out)],
        "import sys\nsys.stderr.close()\nprint('out')\n",
    )
    assert (done.returncode, done.stdout) == (0, "out\n")
    assert out.exists(), "--json was not written"
    assert json.loads(out.read_text())["exit_code"] == 0


def test_the_table_reaches_the_original_stderr_when_the_program_closed_descriptor_2(
    tmp_path: Path,
) -> None:
    # The program closes descriptor 2: the table still goes to the standard error
    # pylibos was started with (through its duplicate, taken at start), the JSON is
    # written and the status is the program's.
    out = tmp_path / "s.json"
    done = run(tmp_path, ["--stats", "--json", str(out)], "import os\nos.close(2)\nprint('out')\n")
    assert (done.returncode, done.stdout) == (0, "out\n")
    assert done.stderr.startswith("pylibos run: sgx/raw")
    assert json.loads(out.read_text())["exit_code"] == 0


def test_nothing_is_printed_when_the_program_closed_every_descriptor(tmp_path: Path) -> None:
    # The program closes every descriptor, then opens files until the duplicate's number
    # is one of its own: the table has nowhere to go and is dropped (never written into
    # the program's files), with no error; the JSON is written, the status is 0.
    out = tmp_path / "s.json"
    source = (
        "import os, resource\n"
        "os.closerange(0, resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "files = [open(f'f{i}.txt', 'w') for i in range(120)]\n"
        "for f in files:\n"
        "    f.write('mine\\n')\n"
        "    f.flush()\n"
    )
    done = run(tmp_path, ["--stats", "--json", str(out)], source)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert json.loads(out.read_text())["exit_code"] == 0
    assert {(tmp_path / f"f{i}.txt").read_text() for i in range(120)} == {"mine\n"}


def test_pylibos_started_with_descriptor_2_closed(tmp_path: Path) -> None:
    # No standard error at all: no table, no crash, the JSON written, the status 0.
    (tmp_path / "prog.py").write_text("print('out')\n")
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", *RUN, "--stats", "--json", "s.json", "--", "prog.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=BOUND,
    )
    assert (done.returncode, done.stdout) == (0, "out\n")
    assert json.loads((tmp_path / "s.json").read_text())["exit_code"] == 0


def test_the_table_is_printed_when_the_json_cannot_be_written(tmp_path: Path) -> None:
    # The program removes the directory --json names (checked before it ran): one ERROR
    # line says so after the table, on the standard error, and the status is the
    # program's.
    (tmp_path / "gone").mkdir()
    done = run(
        tmp_path,
        ["--stats", "--json", "gone/s.json"],
        "import os\nos.rmdir('gone')\nprint('out')\n",
    )
    assert (done.returncode, done.stdout) == (0, "out\n")
    assert "pylibos run:" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("ERROR: cannot write ")
    assert done.stderr.splitlines()[-1].endswith("gone/s.json: No such file or directory")
