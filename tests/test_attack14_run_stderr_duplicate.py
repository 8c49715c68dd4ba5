"""The duplicate of standard error ``pylibos run`` takes at start (``Output`` in
``src/pylibos/_cli/_run_stats.py``), kept open for the whole run, with or without
``--stats``: close-on-exec spares a child that execs, but a child the program forks and
does not exec keeps it.  A program that daemonises (fork, the child's descriptors 0, 1
and 2 put on /dev/null) lets whoever reads its standard error see the end of it as the
parent exits under ``python``; under ``pylibos run`` not until the child is gone too."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from run_support import BOUND, RUN, both

DAEMON = """\
import os, sys
hold = int(sys.argv[1])
if os.fork() == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.read(hold, 1)  # until the test lets it go
    os._exit(0)
print("parent done", flush=True)
"""


def _stderr_ends_with_the_parent(command: list[str], cwd: Path) -> bool:
    """Run the daemonising program; True if its standard error reaches its end once the
    parent has exited (the forked child still alive)."""
    hold, release = os.pipe()
    try:
        proc = subprocess.Popen(
            [*command, "daemon.py", str(hold)],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(hold,),
        )
    finally:
        os.close(hold)
    try:
        assert proc.stderr is not None
        assert proc.wait(timeout=BOUND) == 0
        # Read to the end (3.12+ under pylibos run also writes its documented warning
        # that the process forks multi-threaded), within three seconds.
        fd = proc.stderr.fileno()
        deadline = time.monotonic() + 3.0
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            if ready and not os.read(fd, 1 << 16):
                return True  # the end: nobody holds the pipe open any more
        return False
    finally:
        os.close(release)  # the child reads its end and exits
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_daemonised_child_does_not_hold_the_standard_error_open(tmp_path: Path) -> None:
    # Under python the reader of the program's stderr sees its end as soon as
    # the parent exits (the daemon put /dev/null on its 0, 1, 2).  Under pylibos run
    # (no --stats, no --json) the child still holds descriptor 100, the duplicate of
    # stderr taken by Output.__init__ (prepare_output, src/pylibos/_cli/_run_stats.py,
    # called by cmd_run for every run): the reader waits until the daemon exits (a
    # `subprocess.run(..., capture_output=True)` of such a program hangs).
    (tmp_path / "daemon.py").write_text(DAEMON)
    assert _stderr_ends_with_the_parent([sys.executable], tmp_path)
    assert _stderr_ends_with_the_parent([*RUN, "--"], tmp_path)


FIND_COPIES = """\
import os
mine = os.fstat(2)
copies = []
for name in sorted(os.listdir("/proc/self/fd"), key=int):
    fd = int(name)
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    if fd > 2 and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
        copies.append(fd)
print(copies)
"""


def test_no_copy_of_the_standard_error_without_statistics(tmp_path: Path) -> None:
    # A program looking for other descriptors on its stderr's file: python
    # prints "[]"; pylibos run with neither --stats nor --json prints "[100]" (the
    # duplicate Output takes whatever the options, src/pylibos/_cli/_run_stats.py
    # prepare_output).  The README documents the PAL's descriptors in the table and the
    # duplicate only as where --stats prints.
    (tmp_path / "copies.py").write_text(FIND_COPIES)
    native, under = both(tmp_path, ["copies.py"])
    assert (native.returncode, native.stdout) == (0, "[]\n")
    assert (under.returncode, under.stdout) == (0, "[]\n")
