"""``--json F`` where F is a FIFO nobody reads: ``json_target`` accepts it (it exists
and is writable), and ``at_exit`` (``src/pylibos/_cli/_run_stats.py``) opens it for
writing after the program's end, with Ctrl-C already ignored (``_quiet_ctrl_c``): the
process never ends, and Ctrl-C cannot end it."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from pathlib import Path

from run_support import BOUND, RUN


def test_json_to_a_fifo_with_no_reader_ends(tmp_path: Path) -> None:
    # The program prints "prog done" and returns.  Expected: pylibos ends (an
    # ERROR naming the file, or refused before the program runs), at the latest on
    # Ctrl-C.  pylibos run --json fifo -- ok.py blocks forever in at_exit's
    # open(state.options.json, "w") (src/pylibos/_cli/_run_stats.py), SIGINT set to
    # SIG_IGN just before by _quiet_ctrl_c, so a Ctrl-C changes nothing.
    fifo = tmp_path / "stats.fifo"
    os.mkfifo(fifo)
    (tmp_path / "ok.py").write_text("print('prog done', flush=True)\n")
    proc = subprocess.Popen(
        [*RUN, "--json", str(fifo), "--", "ok.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], BOUND)
        assert ready and proc.stdout.readline() == b"prog done\n"
        try:
            proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # the user's Ctrl-C
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=3.0)
        assert proc.returncode is not None, "still running after the program and a Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=BOUND)
        if proc.stdout is not None:
            proc.stdout.close()
