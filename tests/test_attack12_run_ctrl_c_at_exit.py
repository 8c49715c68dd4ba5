"""A real Ctrl-C while ``pylibos run`` ends the program: while the interpreter joins the
program's threads in a ``threading._register_atexit`` hook of the program's
(``concurrent.futures``), and while the runner's own ``at_exit`` takes the statistics
and shuts the LibOS down.  Each program sends itself the SIGINT from a thread of its own
once the main thread is at the point named, so the moment is the same on every run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from run_support import BOUND, RUN

# The main thread's stack names a function: Ctrl-C then.
WATCH = """\
import os, signal, sys, threading, time

MAIN = threading.get_ident()


def ctrl_c_when_main_is_in(name):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(MAIN)
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if name in names:
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.001)
"""


def both(folder: Path, source: str, options: list[str]) -> list[tuple[int, str, str]]:
    (folder / "prog.py").write_text(source)
    results = []
    for cmd in ([sys.executable, "prog.py"], [*RUN, *options, "--", "prog.py"]):
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=BOUND)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def test_ctrl_c_while_concurrent_futures_joins_its_workers_at_exit(tmp_path: Path) -> None:
    # A program leaves a task running in a ThreadPoolExecutor when its main code
    # ends; the interpreter's threading._shutdown runs concurrent.futures' exit hook
    # (_python_exit, registered with threading._register_atexit), which joins the worker;
    # Ctrl-C there.  Under python stderr is "Exception ignored in: <module 'threading'
    # ...>", the traceback _shutdown -> _python_exit -> join -> _wait_for_tstate_lock
    # ("if lock.acquire(block, timeout):") and "KeyboardInterrupt: ", status 0.  Under
    # pylibos run the same traceback ends with one more frame:
    #   File ".../src/pylibos/pal/_interrupts.py", line 150, in _on_sigint
    #     raise KeyboardInterrupt
    # The runner's _native_ctrl_c (_cli/_run.py), which takes the PAL's SIGINT handler
    # down, is registered with threading._register_atexit before the program runs, and
    # _shutdown calls those hooks last-registered first: the program's own hooks (any
    # library's) join their threads under the PAL's handler.
    source = WATCH + (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(1)\n"
        "pool.submit(ctrl_c_when_main_is_in, '_python_exit')\n"
        "print('main done', flush=True)\n"
    )
    native, under = both(tmp_path, source, [])
    assert native[:2] == (0, "main done\n")
    assert "in _python_exit" in native[2] and native[2].endswith("KeyboardInterrupt: \n")
    assert under == native


def test_ctrl_c_while_the_runner_takes_the_statistics_at_exit(tmp_path: Path) -> None:
    # A Ctrl-C after the program's code, its threads and its atexit handlers
    # are done: under python nothing runs any more, the program prints "main done",
    # stderr is empty, status 0.  Under pylibos run --stats --json the runner's at_exit
    # (_cli/_run_stats.py) is running (here importing rich for the table), with the
    # PAL's handler already taken down by _native_ctrl_c, so the interpreter's
    # KeyboardInterrupt comes out of pylibos's own code: stderr is
    #   Exception ignored in atexit callback: <function at_exit at 0x...>
    #   Traceback (most recent call last):
    #     File ".../src/pylibos/_cli/_run_stats.py", line 182, in at_exit
    #       print_stats(data, stream)
    #     File ".../src/pylibos/_cli/_run_stats.py", line 96, in print_stats
    #       from rich.console import Console
    #     ... (importlib frames)
    #   KeyboardInterrupt:
    # and the statistics table asked for is never printed.
    source = WATCH + (
        "threading.Thread(target=ctrl_c_when_main_is_in, args=('at_exit',), daemon=True)"
        ".start()\n"
        "print('main done', flush=True)\n"
    )
    native, under = both(tmp_path, source, ["--stats", "--json", "run.json"])
    assert native == (0, "main done\n", "")
    assert under[:2] == native[:2]
    assert "pylibos" not in under[2].replace("pylibos run:", ""), under[2]
    assert "Traceback" not in under[2]
    assert "pylibos run: sgx/raw" in under[2]  # the table --stats asks for
    assert json.loads((tmp_path / "run.json").read_text())["exit_code"] == 0
