"""The frames a program sees under ``pylibos run``: the same as under ``python``, but for
the known differences the README lists under "Running a program" (tested here as such).

``pylibos run`` trims its own frames (and runpy's) off the traceback its
``sys.excepthook`` prints, and the PAL's SIGINT handler frame off an uncaught
KeyboardInterrupt.  A program sees its frames in more places than that: its own
excepthook, ``traceback.print_stack``/``inspect.stack``, a KeyboardInterrupt it catches
and logs, an exception from its own signal handler; and under ``python -m`` the
interpreter's report *does* show runpy's frames.  Each case runs the same program under
``python`` and ``pylibos run`` and expects the same stdout, stderr and status."""

from __future__ import annotations

import textwrap
from pathlib import Path

from run_support import native_and_under


def write(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(textwrap.dedent(source))


def test_the_runner_frames_lie_below_the_program_main(tmp_path: Path) -> None:
    # A known difference (README, "Running a program"): the program runs inside the
    # runner's call, so natively the script's module frame is the bottom of the stack
    # (print_stack prints one frame, inspect.stack() has 1 entry, f_back is None), while
    # under pylibos run the frames of python -m pylibos (runpy, pylibos/__main__.py,
    # _cli/_main.py, _cli/_run.py) lie below it: a stack walk of the program's own sees
    # the runner's, and only them, below its <module>.  An uncaught exception reaches
    # sys.excepthook (here the program's own) trimmed to the program's frames, as under
    # python: ['<module>', 'f'].
    write(
        tmp_path,
        "frames.py",
        """
        import inspect, sys, traceback
        traceback.print_stack()
        print(len(inspect.stack()), sys._getframe().f_back is None)
        def hook(t, v, tb):
            print("hook:", [f.name for f in traceback.extract_tb(tb)], file=sys.stderr)
        sys.excepthook = hook
        def f():
            raise ValueError("x")
        f()
        """,
    )
    native, under = native_and_under(tmp_path, ["frames.py"])
    assert native[1] == "1 True\n" and "hook: ['<module>', 'f']" in native[2]
    runner = ["_run_module_as_main", "_run_code", "<module>", "main", "cmd_run",
              "_run_program", "_exec_script"]  # fmt: skip
    assert under[0] == native[0] and under[1] == f"{len(runner) + 1} False\n"
    assert "hook: ['<module>', 'f']" in under[2]
    own = [line for line in under[2].splitlines() if "/pylibos/" in line and "File" in line]
    assert [line.rsplit(", in ", 1)[1] for line in own] == runner[2:]


def test_ctrl_c_the_program_catches_or_handles_shows_the_pal_handler_frame(
    tmp_path: Path,
) -> None:
    # A known difference (README, "Running a program"): the PAL's SIGINT handler is a
    # Python function (it defers KeyboardInterrupt across its critical sections,
    # pal/_interrupts.py), so a KeyboardInterrupt the program catches and logs ends in
    # its frame (_on_sigint), and an exception from the program's own SIGINT handler
    # passes through the PAL's wrapper (_Deferring.__call__).  Those two frames are the
    # whole difference: without them the reports are python's.  (An uncaught one is
    # trimmed: tests/test_run.py.)
    write(
        tmp_path,
        "ctrlc.py",
        """
        import signal, traceback
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            traceback.print_exc()
        def handler(signum, frame):
            raise RuntimeError("from the handler")
        signal.signal(signal.SIGINT, handler)
        signal.raise_signal(signal.SIGINT)
        """,
    )
    native, under = native_and_under(tmp_path, ["ctrlc.py"])
    assert native[0] == 1 and native[2].count("Traceback") == 2
    lines = under[2].splitlines(keepends=True)
    pal = [i for i, line in enumerate(lines) if "pylibos/pal/_interrupts.py" in line]
    assert [lines[i].rsplit(", in ", 1)[1] for i in pal] == ["_on_sigint\n", "__call__\n"]
    # Each PAL frame is its "File" line and the lines under it (its code, and from 3.13
    # the carets under the code).
    dropped = set(pal)
    for i in pal:
        j = i + 1
        while j < len(lines) and lines[j].startswith("    "):
            dropped.add(j)
            j += 1
    kept = "".join(line for i, line in enumerate(lines) if i not in dropped)
    assert (under[0], under[1], kept) == native


def test_an_uncaught_exception_under_dash_m_is_reported_with_runpy_frames(
    tmp_path: Path,
) -> None:
    # `python -m boom` reports
    #   Traceback (most recent call last):
    #     File "<frozen runpy>", line 198, in _run_module_as_main
    #     File "<frozen runpy>", line 88, in _run_code
    #     File ".../boom.py", line 3, in <module>
    #   ...
    # (and `python somedir` the same runpy frames).  pylibos run's _program_frames
    # (_cli/_run.py) drops the runpy frames after its own, so the two runpy lines
    # are missing: the report differs from python's.
    write(
        tmp_path,
        "boom.py",
        """
        def g():
            raise OSError(5, "io")
        g()
        """,
    )
    native, under = native_and_under(tmp_path, ["-m", "boom"])
    assert native[0] == 1 and '"<frozen runpy>"' in native[2]
    assert under == native


def test_ctrl_c_while_python_waits_for_threads_at_exit_shows_no_pylibos_frame(
    tmp_path: Path,
) -> None:
    # Ctrl-C while the interpreter waits for a non-daemon thread at exit (the
    # usual moment a user presses it): natively
    #   Exception ignored in: <module 'threading' from '.../threading.py'>
    #   Traceback (most recent call last):
    #     File ".../threading.py", line ..., in _shutdown
    #       lock.acquire()
    #   KeyboardInterrupt:
    # Under pylibos run the report has two more lines, the PAL's handler:
    #     File ".../pylibos/pal/_interrupts.py", line ..., in _on_sigint
    #       raise KeyboardInterrupt
    # (that report is printed by the interpreter, not by sys.excepthook, so _run.py's
    # trimming never sees it).
    write(
        tmp_path,
        "atexit_wait.py",
        """
        import signal, threading, time
        main = threading.main_thread()
        def worker():
            while main.is_alive():  # the main thread has reached threading._shutdown
                time.sleep(0.005)
            signal.pthread_kill(main.ident, signal.SIGINT)
            threading.Event().wait(5)
        threading.Thread(target=worker).start()
        print("main ends")
        """,
    )
    native, under = native_and_under(tmp_path, ["atexit_wait.py"])
    assert native[2].rstrip().endswith("KeyboardInterrupt:")
    assert under == native


def test_a_thread_stack_starts_at_the_pal_thread_entry(tmp_path: Path) -> None:
    # A known difference (README, "Running a program"): a thread started through the
    # LibOS runs threading's bootstrap from the PAL thread's entry (_run in
    # pal/_thread.py), a Python frame below threading's: traceback.extract_stack() in
    # the thread gives ['_run', '_bootstrap', '_bootstrap_inner', 'run', 'f'] where
    # python gives ['_bootstrap', '_bootstrap_inner', 'run', 'f'].
    write(
        tmp_path,
        "tstack.py",
        """
        import threading, traceback
        def f():
            print([frame.name for frame in traceback.extract_stack()])
        t = threading.Thread(target=f)
        t.start()
        t.join()
        """,
    )
    native, under = native_and_under(tmp_path, ["tstack.py"])
    assert native == (0, "['_bootstrap', '_bootstrap_inner', 'run', 'f']\n", "")
    assert under == (0, "['_run', " + native[1][1:], "")
