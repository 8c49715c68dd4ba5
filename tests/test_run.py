"""``pylibos run``: a program sees what it sees under ``python``; pylibos's own output is
on stderr, at exit, or in ``--json``.

Most cases run the same program twice, under ``python`` and under ``pylibos run``, and
expect the same stdout, stderr and exit status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from libos_support import wait_until
from pylibos import _schema
from run_support import BOUND, RUN, both, python, side_by_side


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def same(native: subprocess.CompletedProcess[str], under: subprocess.CompletedProcess[str]) -> None:
    assert (under.returncode, under.stdout, under.stderr) == (
        native.returncode,
        native.stdout,
        native.stderr,
    )


SHOW = """
    import os, sys, threading, select, selectors
    print(sys.argv, sys.path[0] == os.getcwd() or sys.path[0], __name__)
    print(__file__, __spec__ and __spec__.name, type(__builtins__).__name__)
    print(sys.modules["__main__"].__dict__ is globals())
    out = []
    t = threading.Thread(target=lambda: out.append(threading.current_thread().name))
    t.start(); t.join()
    print(out, threading.current_thread().name, len(threading.enumerate()))
"""


@pytest.mark.parametrize("options", [(), ("--pal", "direct", "--events", "pipe", "--pool")])
def test_script_sees_what_it_sees_under_python(tmp_path: Path, options: tuple[str, ...]) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "show.py", SHOW)
    same(*both(tmp_path, ["sub/show.py", "a", "--b", "-m"], options))


def test_module_sees_what_it_sees_under_python(tmp_path: Path) -> None:
    write(tmp_path, "showmod.py", SHOW)
    same(*both(tmp_path, ["-m", "showmod", "x", "y"]))


def test_stdin_exit_status_and_uncaught_exception(tmp_path: Path) -> None:
    write(
        tmp_path,
        "io.py",
        """
        import sys
        data = sys.stdin.read()
        print(data.upper(), end="")
        if data.startswith("exit"):
            sys.exit(int(data.split()[1]))
        if data.startswith("text"):
            sys.exit("a message")
        def inner():
            raise ValueError("uncaught " + data.strip())
        inner()
        """,
    )
    for stdin in ("exit 3\n", "exit 0\n", "text\n", "boom\n"):
        native, under = both(tmp_path, ["io.py"], stdin=stdin)
        same(native, under)
    assert native.returncode == 1 and "ValueError: uncaught boom" in native.stderr


def test_an_uncaught_exception_in_a_thread_and_asyncio(tmp_path: Path) -> None:
    write(
        tmp_path,
        "t.py",
        """
        import asyncio, concurrent.futures, threading
        def boom():
            raise RuntimeError("in a thread")
        t = threading.Thread(target=boom, name="bad")
        t.start(); t.join()
        async def main():
            return await asyncio.to_thread(sum, [1, 2, 3])
        print(asyncio.run(main()))
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            print(sorted(ex.map(abs, [-1, -2, -3])))
        """,
    )
    same(*both(tmp_path, ["t.py"]))


def test_daemon_threads_do_not_hold_up_exit(tmp_path: Path) -> None:
    """Non-daemon threads are waited for, daemon ones (one asleep in the LibOS's epoll)
    are not, and the program's atexit handlers run after the non-daemon thread."""
    write(
        tmp_path,
        "d.py",
        """
        import atexit, select, threading
        done = []
        atexit.register(lambda: print("atexit after", done))
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        ep = select.epoll()
        threading.Thread(target=ep.poll, daemon=True).start()
        go = threading.Event()
        t = threading.Thread(target=lambda: (go.wait(), done.append("worker")))
        t.start()
        print("main ends")
        go.set()
        """,
    )
    native, under = both(tmp_path, ["d.py"], ("--stats",))
    assert native.stdout == under.stdout == "main ends\natexit after ['worker']\n"
    assert under.returncode == native.returncode == 0
    assert "3 threads created through the LibOS" in under.stderr


@pytest.mark.parametrize("every", [None, "1", "3"])
def test_stats_and_json(tmp_path: Path, every: str | None) -> None:
    """The phase table is over one start in ``--profile-every`` (8 by default: of the 7
    starts, the first), and says so; host calls are counted for every start."""
    sampled = {None: 1, "1": 7, "3": 3}[every]
    profile_every = () if every is None else ("--profile-every", every)
    write(
        tmp_path,
        "many.py",
        """
        import threading
        ts = [threading.Thread(target=lambda: None) for _ in range(7)]
        for t in ts: t.start()
        for t in ts: t.join()
        print("done")
        """,
    )
    out = tmp_path / "stats.json"
    under = python(
        [*RUN, "--pal", "sgx", "--events", "eventfd", "--stats", "--ocall-cycles", "1000",
         *profile_every, "--json", str(out), "--", "many.py"],
        tmp_path,
    )  # fmt: skip
    assert under.returncode == 0 and under.stdout == "done\n"  # nothing of pylibos's
    assert "7 threads created through the LibOS" in under.stderr
    assert "create_pollable_event" in under.stderr and "host calls by kind" in under.stderr
    data = json.loads(out.read_text())
    assert data["format_version"] == _schema.RUN_FORMAT_VERSION == 1
    assert data["kind"] == "pylibos.run"
    for schema, value in [
        (_schema.RunStats, data),
        (_schema.RunConfig, data["config"]),
        (_schema.RunProfile, data["profile"]),
    ] + [(_schema.PhaseStats, phase) for phase in data["phases"].values()]:
        required, allowed = _schema.keys(schema)
        assert required <= value.keys() <= allowed, (schema.__name__, sorted(value))
    assert data["config"] == {"name": "sgx/eventfd", "pal": "sgx", "events": "eventfd",
                              "pool": False}  # fmt: skip
    assert data["threads_created"] == 7 and data["exit_code"] == 0
    assert data["argv"] == ["many.py"]
    assert data["profile"] == {
        "every": int(every or 8),
        "clones_started": 7,
        "clones_sampled": sampled,
    }
    assert {p["count"] for p in data["phases"].values()} == {sampled}
    # One eventfd each sampled start.
    assert data["phases"]["create_pollable_event"]["host_calls"] == sampled
    if every == "1":
        assert "thread starts (one in" not in under.stderr
    else:
        assert f"timed {sampled} of 7 thread starts (one in {int(every or 8)};" in under.stderr
    # The program's 7, and the LibOS's two workers.
    assert data["host_calls"]["clone_thread"] == 9
    assert data["host_calls"]["eventfd"] >= 7
    assert data["host_calls_total"] == sum(data["host_calls"].values())
    assert data["projected_host_call_cycles"] == data["host_calls_total"] * 1000


def test_run_loads_no_benchmark_numpy_rich_or_matplotlib(tmp_path: Path) -> None:
    """Start-up is part of every workload's time under ``pylibos run``: the command loads
    the LibOS and nothing the other subcommands need."""
    write(
        tmp_path,
        "modules.py",
        """
        import sys
        heavy = ("numpy", "rich", "matplotlib", "pylibos.bench", "pylibos.workloads")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy))
        print("pylibos.libos" in sys.modules)
        """,
    )
    under = python([*RUN, "--pal", "sgx", "--events", "raw", "--", "modules.py"], tmp_path)
    assert (under.returncode, under.stdout) == (0, "[]\nTrue\n")


@pytest.mark.parametrize("events", ["eventfd", "pipe"])
def test_a_forked_child_leaves_the_run_to_its_parent(tmp_path: Path, events: str) -> None:
    """A child forked under ``pylibos run`` that exits normally runs the ``atexit``
    handlers it inherited: it must write no statistics (they are the run's, the parent's)
    and must not tear down the LibOS's channels, which it shares with the parent."""
    write(
        tmp_path,
        "forks.py",
        """
        import os, sys, threading, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads are running
        pid = os.fork()
        if pid == 0:
            print("child")
            sys.exit(0)
        os.waitpid(pid, 0)
        ts = [threading.Thread(target=lambda: None) for _ in range(3)]
        for t in ts: t.start()
        for t in ts: t.join()
        print("parent")
        """,
    )
    out = tmp_path / "stats.json"
    native, under = both(
        tmp_path, ["forks.py"], ("--events", events, "--stats", "--json", str(out))
    )
    assert (under.returncode, under.stdout) == (native.returncode, native.stdout)
    assert under.stderr.count("pylibos run:") == 1, under.stderr
    assert "host error" not in under.stderr
    data = json.loads(out.read_text())
    assert data["threads_created"] == 3


def test_ctrl_c_is_reported_as_python_reports_it(tmp_path: Path) -> None:
    """A real SIGINT while the main thread sleeps in the LibOS's epoll (through
    selectors) and another thread runs: the traceback ends in KeyboardInterrupt and the
    process dies of SIGINT, as under python."""
    write(
        tmp_path,
        "wait.py",
        """
        import selectors, socket, threading
        a, b = socket.socketpair()
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ)
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        from pylibos.libos._epoll import Epoll  # the LibOS's, whatever its class's name
        print(isinstance(sel._selector, Epoll), flush=True)
        while True:
            sel.select()
        """,
    )
    results = []
    for cmd in ([sys.executable, "wait.py"], [*RUN, "--", "wait.py"]):
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert in_a_poll(proc.pid), "the main thread never went to sleep in its poll"
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=BOUND)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        results.append((first, proc.returncode, err))
    (n_first, n_rc, n_err), (u_first, u_rc, u_err) = results
    assert (n_first, u_first) == ("False\n", "True\n")
    assert n_rc == u_rc == -signal.SIGINT
    for err in (n_err, u_err):
        assert err.startswith("Traceback (most recent call last):\n")
        assert f'File "{tmp_path / "wait.py"}", line 10, in <module>' in err
        assert err.rstrip().endswith("KeyboardInterrupt")
    assert "pylibos/_cli/" not in u_err and "runpy" not in u_err


# x86-64 and aarch64 numbers of poll, ppoll, epoll_wait, epoll_pwait, epoll_pwait2.
_POLLS = {"7", "271", "232", "281", "441", "73", "22"}


def in_a_poll(pid: int) -> bool:
    """Wait (bounded) until the main thread of ``pid`` sleeps in a poll system call."""

    def polling() -> bool:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split(" ", 1)[0] in _POLLS

    return wait_until(polling, BOUND)


@pytest.mark.parametrize(
    "program",
    [["missing.py"], ["-m", "no_such_module_here"], ["sub/"]],
    ids=["script", "module", "directory-without-main"],
)
def test_a_missing_program_is_reported_as_python_does(tmp_path: Path, program: list[str]) -> None:
    (tmp_path / "sub").mkdir()
    native, under = both(tmp_path, program)
    assert native.returncode in (1, 2)
    assert under.returncode == native.returncode and under.stdout == ""
    assert under.stderr == native.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pal", "nope", "--", "x.py"], "argument --pal: invalid choice: 'nope'"),
        (["--events", "tls", "--", "x.py"], "argument --events: invalid choice: 'tls'"),
        (["--ocall-cycles", "-5", "--", "x.py"], "must be 0 or more"),
        (["--profile-every", "0", "--", "x.py"], "argument --profile-every: must be 1 or more"),
        (["--profile-every", "1.5", "--", "x.py"], "argument --profile-every: not an integer"),
        (["--bogus", "--", "x.py"], "unrecognized arguments: --bogus"),
        ([], "no program given"),
        (["--", "-m"], "-m needs a module name"),
        (["--json", "/no/such/dir/x.json", "--", "x.py"], "no such directory /no/such/dir"),
        (["--pal", "direct", "--max-threads", "9", "--", "x.py"], "--pal sgx only"),
    ],
)
def test_bad_options_are_one_error_line_and_status_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write(tmp_path, "x.py", "print('ran')\n")
    under = python([*RUN, *args], tmp_path)
    assert under.returncode == 2 and under.stdout == ""
    assert under.stderr.startswith("ERROR: ") and under.stderr.count("\n") == 1
    assert message in under.stderr


def test_without_double_dash_the_first_non_option_is_the_program(tmp_path: Path) -> None:
    write(tmp_path, "x.py", "import sys; print(sys.argv)\n")
    under = python([*RUN, "--pal", "direct", "x.py", "--stats"], tmp_path)
    assert under.returncode == 0 and under.stdout == "['x.py', '--stats']\n"
    assert under.stderr == ""


def test_a_signal_the_program_blocks_stays_pending_as_under_python(tmp_path: Path) -> None:
    """A program that blocks SIGINT (``pthread_sigmask``) and waits for it with
    ``sigtimedwait`` gets it there; the LibOS's own threads (its workers, handshake
    helpers) must not take it for the program and raise ``KeyboardInterrupt`` in it."""
    write(
        tmp_path,
        "blocks.py",
        """
        import os, signal, subprocess
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        subprocess.run(["kill", "-INT", str(os.getpid())], check=True)
        info = signal.sigtimedwait({signal.SIGINT}, 10)
        print(info and info.si_signo)
        """,
    )
    for options in (("--events", "raw"), ("--events", "pipe")):
        native, under = both(tmp_path, ["blocks.py"], options)
        same(native, under)
        assert native.stdout == f"{int(signal.SIGINT)}\n"


def test_a_ctrl_c_traceback_shows_no_frame_of_pylibos(tmp_path: Path) -> None:
    """The PAL's SIGINT handler is a Python function, so the KeyboardInterrupt passes
    through its frame; the report of an uncaught one must not show it."""
    write(
        tmp_path,
        "sleeps.py",
        """
        import signal
        signal.raise_signal(signal.SIGINT)  # handled as this line ends
        """,
    )
    native, under = both(tmp_path, ["sleeps.py"])
    assert native.returncode == -signal.SIGINT
    same(native, under)


def test_a_failing_excepthook_of_the_program_is_reported_as_python_reports_it(
    tmp_path: Path,
) -> None:
    # The runner hands the uncaught exception to the program's hook; the hook's own
    # failure is reported as the interpreter reports it, with no frame of the runner.
    write(
        tmp_path,
        "hook.py",
        """
        import sys
        def hook(*args):
            raise RuntimeError("from the hook")
        sys.excepthook = hook
        raise ValueError("x")
        """,
    )
    native, under = side_by_side([[sys.executable, "hook.py"], [*RUN, "--", "hook.py"]], tmp_path)
    assert native.returncode == 1 and "Original exception was:" in native.stderr
    assert (under.returncode, under.stdout, under.stderr) == (1, "", native.stderr)


def test_an_excepthook_that_exits_sets_the_status_and_the_json(tmp_path: Path) -> None:
    write(
        tmp_path,
        "hook.py",
        "import sys\nsys.excepthook = lambda *a: sys.exit(7)\nraise ValueError\n",
    )
    under = python([*RUN, "--json", "run.json", "--", "hook.py"], tmp_path)
    assert (under.returncode, under.stdout, under.stderr) == (7, "", "")
    assert json.loads((tmp_path / "run.json").read_text())["exit_code"] == 7


IN_REMOVED = 'cd "$0" && rmdir "$0" && exec "$@"'


def test_dash_m_from_a_removed_directory_and_json_relative_there(tmp_path: Path) -> None:
    # python -m of a module found on PYTHONPATH runs from a removed directory (nothing
    # put in front of sys.path); --json with a relative path has no directory to be in.
    (tmp_path / "lib").mkdir()
    write(tmp_path / "lib", "mod.py", "import sys\nprint('hi', sys.argv, sys.path[0])\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "lib")}
    results = []
    for name, cmd in (
        ("n", [sys.executable, "-m", "mod", "a"]),
        ("u", [*RUN, "--", "-m", "mod", "a"]),
        ("j", [*RUN, "--json", "run.json", "--", "-m", "mod"]),
    ):
        (tmp_path / name).mkdir()
        done = subprocess.run(
            ["sh", "-c", IN_REMOVED, str(tmp_path / name), *cmd],
            env=env,
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
        results.append((done.returncode, done.stdout, done.stderr))
    native, under, relative_json = results
    assert native == (0, f"hi [{str(tmp_path / 'lib' / 'mod.py')!r}, 'a'] {tmp_path / 'lib'}\n", "")
    assert under == native
    assert relative_json[:2] == (2, "")
    assert relative_json[2].startswith("ERROR: --json run.json: a relative path")


def test_the_program_from_standard_input_sees_what_python_shows(tmp_path: Path) -> None:
    source = (
        "import sys\n"
        "m = sys.modules['__main__']\n"
        "print(sys.argv, repr(sys.path[0]), m.__file__, m.__loader__.__name__, m.__spec__)\n"
        "print(sys.stdin.read() == '')\n"
        "def f():\n"
        "    raise ValueError('x')\n"
        "f()\n"
    )
    native, under = side_by_side(
        [[sys.executable, "-", "a"], [*RUN, "--", "-", "a"]], tmp_path, stdin=source
    )
    assert native.returncode == 1 and native.stdout.startswith("['-', 'a'] '' <stdin>")
    assert (under.returncode, under.stdout, under.stderr) == (1, native.stdout, native.stderr)


def test_the_runner_exit_work_is_one_atexit_callback(tmp_path: Path) -> None:
    # A known difference (README): the runner's exit work is registered with atexit
    # before pylibos imports anything that registers its own, so it runs last; the
    # program counts it, and logging's shutdown (pylibos imports logging).
    write(tmp_path, "count.py", "import atexit\nprint(atexit._ncallbacks())\n")
    native, under = side_by_side([[sys.executable, "count.py"], [*RUN, "--", "count.py"]], tmp_path)
    assert (native.returncode, native.stdout, native.stderr) == (0, "0\n", "")
    assert (under.returncode, under.stdout, under.stderr) == (0, "2\n", "")


def test_dash_reads_a_terminal_to_its_end(tmp_path: Path) -> None:
    # A known difference (README): python - on a terminal starts its interactive
    # prompt; pylibos run reads the terminal to its end (Ctrl-D) and runs what it read.
    import pty

    main_end, term = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*RUN, "--", "-"],
            cwd=tmp_path,
            stdin=term,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(main_end, b"print('hi', __file__)\n\x04")
        out, err = proc.communicate(timeout=BOUND)
    finally:
        os.close(term)
        os.close(main_end)
    assert (proc.returncode, out, err) == (0, "hi <stdin>\n", "")


def open_writer(fifo: Path, proc: subprocess.Popen[str]) -> int:
    """The FIFO's write end once ``proc`` has it open to read; -1 if ``proc`` ended first."""
    found = [-1]

    def ready() -> bool:
        try:
            found[0] = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            return proc.poll() is not None
        return True

    assert wait_until(ready)
    return found[0]


def test_a_script_from_a_fifo_is_opened_once(tmp_path: Path) -> None:
    # python opens a FIFO program once and reads it; the runner must not open it to look
    # for a zip file's signature first (that open would take the writer's data, or end
    # it with a broken pipe, and the real read would wait for a writer forever).
    fifo = tmp_path / "prog.fifo"
    os.mkfifo(fifo)
    results = []
    for cmd in ([sys.executable], [*RUN, "--"]):
        proc = subprocess.Popen(
            [*cmd, str(fifo), "a"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        writer = -1
        try:
            writer = open_writer(fifo, proc)
            if writer != -1:
                os.write(writer, b"import sys\nprint('hi', sys.argv, sys.path[0])\n")
                os.close(writer)
                writer = -1
            out, err = proc.communicate(timeout=BOUND)
        finally:
            if writer != -1:
                os.close(writer)
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        results.append((proc.returncode, out, err))
    native, under = results
    assert native == (0, f"hi [{str(fifo)!r}, 'a'] {tmp_path}\n", "")
    assert under == native


def test_pythonpath_naming_the_current_directory_is_kept(tmp_path: Path) -> None:
    """``python -m pylibos`` takes the current directory off ``sys.path`` for its own
    imports; a ``PYTHONPATH`` entry naming that directory stays the program's, as under
    python."""
    (tmp_path / "helper_mod.py").write_text("print('found')\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.py").write_text("import helper_mod\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for cmd in ([sys.executable, "sub/s.py"], [*RUN, "--", "sub/s.py"]):
        done = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BOUND, check=False
        )
        assert (done.returncode, done.stdout) == (0, "found\n"), done.stderr


@pytest.mark.parametrize("option", ["-c", "-X"])
def test_another_interpreter_option_is_refused_plainly(tmp_path: Path, option: str) -> None:
    done = subprocess.run(
        [*RUN, "--", option, "print(1)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"ERROR: python option {option} is not supported"), done.stderr
