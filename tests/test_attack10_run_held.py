"""Claims of ``pylibos run`` that held when tried: the same program under ``python`` and
under ``pylibos run`` gives the same stdout, stderr and status.  All HOLD; they add to
tests/test_run.py the cases below (every process of a test runs at the same time)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from run_support import BOUND, RUN, at_once


def run_all(
    folder: Path, programs: list[list[str]], stdin: bytes = b""
) -> list[tuple[tuple[int, bytes, bytes], tuple[int, bytes, bytes]]]:
    """Each program under python and under pylibos run, all at once: (native, under)."""
    cmds = [c for p in programs for c in ([sys.executable, *p], [*RUN, "--", *p])]
    done = [(d.returncode, d.stdout, d.stderr) for d in at_once(cmds, folder, stdin, text=False)]
    return list(zip(done[::2], done[1::2], strict=True))


EXITS = """
    import atexit, os, sys, threading
    atexit.register(print, "atexit ran")
    mode = sys.argv[1]
    if mode == "thread-exit":
        t = threading.Thread(target=sys.exit, args=(5,))
        t.start(); t.join()
        print("main goes on")
    elif mode == "os-exit":
        print("before", flush=True)
        os._exit(4)
    else:
        sys.exit({"list": [1, 2], "huge": 2**70}[mode])
"""


def test_exit_statuses(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text(textwrap.dedent(EXITS))
    modes = ["list", "huge", "thread-exit", "os-exit"]
    results = run_all(tmp_path, [["exits.py", m] for m in modes])
    for native, under in results:
        assert under == native
    statuses = [native[0] for native, _under in results]
    assert statuses == [1, 255, 0, 4]


STATE = """
    import doctest, inspect, pickle, signal, sys
    print(input("name? "), sys.stdin.read().split())
    sys.stdout.flush()
    sys.stdout.buffer.write(bytes(range(256)) + b"\\n")
    sys.stdout.buffer.flush()
    print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
          sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
          signal.getsignal(signal.SIGTERM), sys.getswitchinterval())
    class C:
        pass
    def f():
        '''
        >>> 1 + 1
        2
        '''
    print(pickle.loads(pickle.dumps(f)) is f, type(pickle.loads(pickle.dumps(C()))).__name__)
    print(doctest.testmod(), inspect.getsource(f).splitlines()[0])
    import __main__
    print(__main__.f is f, __main__.__dict__ is globals(), __spec__)
"""


def test_streams_signals_and_the_main_module(tmp_path: Path) -> None:
    (tmp_path / "state.py").write_text(textwrap.dedent(STATE))
    ((native, under),) = run_all(tmp_path, [["state.py"]], stdin=b"ann\nrest of it\n")
    assert native[0] == 0 and native[1].startswith(b"name? ann ['rest', 'of', 'it']\n")
    assert under == native


ASYNC = """
    import asyncio, os, signal, sys, threading
    async def main():
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got.set)
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(got.wait(), 10)
        r, w = os.pipe()
        fut = loop.create_future()
        loop.add_reader(r, lambda: fut.set_result(os.read(r, 10)))
        threading.Thread(target=os.write, args=(w, b"hello")).start()
        print(await asyncio.wait_for(fut, 10), loop.remove_reader(r), loop.remove_reader(r))
        os.close(r); os.close(w)
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; print(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        print((await p.communicate(b"child"))[0], p.returncode)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print(await reader.read())
    asyncio.run(main())
"""


def test_asyncio_signals_readers_subprocesses_and_pipes(tmp_path: Path) -> None:
    (tmp_path / "aio.py").write_text(textwrap.dedent(ASYNC))
    ((native, under),) = run_all(tmp_path, [["aio.py"]], stdin=b"piped in\n")
    assert native == (0, b"b'hello' True False\nb'CHILD\\n' 0\nb'piped in\\n'\n", b"")
    assert under == native


def test_a_reader_that_goes_away_and_sigterm(tmp_path: Path) -> None:
    # HOLDS.  stdout's reader closes after one line (`| head -1`): the program's next
    # writes fail, BrokenPipeError is reported as python reports it, status 1.  SIGTERM
    # while the program waits on stdin (with a thread of its own in the LibOS's epoll):
    # death by SIGTERM, -15, and nothing on stderr.
    (tmp_path / "lines.py").write_text(
        "import select, sys, threading\n"
        "threading.Thread(target=select.epoll().poll, daemon=True).start()\n"
        "if sys.argv[1] == 'wait':\n"
        "    print('ready', flush=True)\n"
        "    sys.stdin.read()\n"
        "for i in range(10**6):\n"
        "    print('line', i)\n"
    )
    results = []
    for mode in ("lines", "wait"):
        procs = [
            subprocess.Popen(
                cmd,
                cwd=tmp_path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for cmd in ([sys.executable, "lines.py", mode], [*RUN, "--", "lines.py", mode])
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None and proc.stderr is not None
                first = proc.stdout.readline()
                if mode == "wait":
                    proc.terminate()
                proc.stdout.close()
                proc.wait(BOUND)
                results.append((mode, first, proc.returncode, proc.stderr.read()))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
    native_lines, under_lines, native_wait, under_wait = results
    assert native_lines[2] == 1 and "BrokenPipeError" in native_lines[3]
    assert under_lines == native_lines
    assert native_wait == ("wait", "ready\n", -15, "")
    assert under_wait == native_wait
