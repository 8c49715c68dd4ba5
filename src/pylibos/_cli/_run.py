"""``pylibos run``: an unmodified Python program under the LibOS, as ``gramine-sgx app``
runs an application unchanged.

The program runs in this interpreter with the LibOS's thread-start hook and epoll
installed (``pylibos.libos.install``), and sees what it sees under ``python``: the same
``sys.argv``, ``sys.path[0]``, ``__main__``, standard streams and exit status.  pylibos
writes nothing to stdout.  The statistics are taken in an ``atexit`` handler registered
before the program runs, so they come after the interpreter has waited for the program's
non-daemon threads and after the program's own ``atexit`` handlers, as late as the
program's own work can reach.  Uncaught exceptions, ``sys.exit`` and Ctrl-C are left to
the interpreter, which reports them and sets the exit status as it does natively; only
the runner's frames are taken off the front of the traceback (the ``runpy`` ones of
``-m`` or a directory stay, as ``python`` shows them).  What cannot be hidden (the
runner's frames below the program's, the PAL's frames, the LibOS's worker threads) is
listed in the README under "Running a program".
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import marshal
import os
import runpy
import signal
import struct
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..libos import EVENT_KINDS, SAMPLE_EVERY, LibOS, default_events, install
from ..pal import HOST_KINDS, open_host
from ._options import UsageError, nonnegative_integer, positive_integer
from ._run_stats import RunState, at_exit

DEFAULT_OCALL_CYCLES = 10_000


class RunUsageError(UsageError):
    """A bad option of pylibos's own: ``ERROR: ...`` and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise RunUsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pylibos run",
        usage="pylibos run [options] -- script.py [args ...]\n"
        "       pylibos run [options] -- -m module [args ...]",
        description="Run an unmodified Python program with its threads and epoll going "
        "through the LibOS (the thread-start hook and select.epoll). The program sees "
        "what it sees under python; pylibos writes nothing to its stdout.",
    )
    p.add_argument("--pal", choices=HOST_KINDS, default="sgx", help="host kind (default sgx)")
    p.add_argument(
        "--events", choices=EVENT_KINDS, default=None,
        help="pollable-event channel (default: raw on sgx, pipe on direct)",
    )  # fmt: skip
    p.add_argument("--pool", action="store_true", help="reuse the events of exited threads")
    p.add_argument(
        "--max-threads", type=nonnegative_integer, default=1024, metavar="N",
        help="sgx.max_threads: threads the enclave may hold at once (default 1024)",
    )  # fmt: skip
    p.add_argument(
        "--stats", action="store_true",
        help="print to stderr at exit: threads created, the phase table, host calls by "
        "kind and the projected SGX cost",
    )  # fmt: skip
    p.add_argument(
        "--profile-every", type=positive_integer, default=SAMPLE_EVERY, metavar="N",
        help=f"time one thread start in N for the phase table (default {SAMPLE_EVERY}; "
        "1 times every start)",
    )  # fmt: skip
    p.add_argument(
        "--ocall-cycles", type=nonnegative_integer, default=DEFAULT_OCALL_CYCLES, metavar="C",
        help=f"cycles per host call for the projection (default {DEFAULT_OCALL_CYCLES:,})",
    )  # fmt: skip
    p.add_argument("--json", metavar="F", help="write the statistics as JSON to F at exit")
    return p


@dataclass
class Target:
    """What to run: a script path, or a module with ``-m``; and its arguments."""

    script: str | None
    module: str | None
    args: list[str]


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Target]:
    """Split ``argv`` into pylibos's options and the program; raises ``RunUsageError``."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        mine, program = argv[:cut], argv[cut + 1 :]
    else:
        # Without "--", the program starts at the first word that is not an option of
        # ours (or "-m").
        mine, program = [], []
        takes_value = {
            "--pal", "--events", "--max-threads", "--profile-every", "--ocall-cycles", "--json"
        }  # fmt: skip
        i = 0
        while i < len(argv):
            word = argv[i]
            if word == "-m" or not word.startswith("-"):
                program = argv[i:]
                break
            mine.append(word)
            if word in takes_value and i + 1 < len(argv):
                mine.append(argv[i + 1])
                i += 1
            i += 1
    options = build_parser().parse_args(mine)
    if not program:
        raise RunUsageError("no program given: pylibos run [options] -- script.py [args ...]")
    if program[0] == "-m":
        if len(program) < 2:
            raise RunUsageError("-m needs a module name: pylibos run -- -m module [args ...]")
        return options, Target(None, program[1], program[2:])
    return options, Target(program[0], None, program[1:])


def json_target(path: str) -> str:
    """The absolute path ``--json`` names, checked before the program runs: resolved
    against the directory pylibos was started in (the program may change it), and
    refused (``RunUsageError``) if empty, a directory, in a missing directory or in one
    that cannot be written."""
    if not path:
        raise RunUsageError("--json: the path is empty")
    full = os.path.join(os.getcwd(), path)
    if os.path.isdir(full):
        raise RunUsageError(f"--json {path}: is a directory")
    folder = os.path.dirname(full) or os.sep
    if not os.path.isdir(folder):
        raise RunUsageError(f"--json {path}: no such directory {os.path.normpath(folder)}")
    if os.path.exists(full) and not os.access(full, os.W_OK):
        raise RunUsageError(f"--json {path}: the file is not writable")
    if not os.path.exists(full) and not os.access(folder, os.W_OK):
        raise RunUsageError(f"--json {path}: directory {folder} is not writable")
    return full


def _set_path0(target: Target) -> None:
    """``sys.path[0]`` as ``python`` sets it: the script's directory (symlinks resolved),
    a directory or zip file itself (made absolute, not normalised), or the current
    directory with ``-m``."""
    if target.script is None:
        sys.path[0] = os.getcwd()
    elif os.path.isdir(target.script) or _is_zip(target.script):
        sys.path[0] = os.path.join(os.getcwd(), target.script)
    else:
        sys.path[0] = os.path.dirname(os.path.realpath(target.script))


def _missing_target(target: Target) -> tuple[str, int] | None:
    """What ``python`` says, and its exit status, for a script it cannot find (before
    the LibOS boots: no program code runs).  A module is looked for by ``runpy`` as the
    program runs, as under ``python -m``: its parent packages are the program's code."""
    if target.script is None:
        return None
    path = os.path.join(os.getcwd(), target.script)
    if not os.path.exists(target.script):
        return (
            f"{sys.executable}: can't open file {path!r}: [Errno 2] No such file or directory",
            2,
        )
    if not _has_main(target.script):
        return f"{sys.executable}: can't find '__main__' module in {path!r}", 1
    return None


class _TrimmedExcepthook:
    """Reports an uncaught exception without the frames of pylibos and runpy in front of
    the program's own, as ``python`` shows it; then hands it to the hook it replaced."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    def __call__(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        trimmed = _program_frames(tb)
        if isinstance(exc, BaseException):
            exc.__traceback__ = trimmed  # the interpreter prints the exception's own
        self.inner(exc_type, exc, trimmed)


def _program_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the program's first frame on, after the runner's frames: what
    ``python`` shows (with the ``runpy`` ones a module or a directory runs under)."""
    entry, last_runner = tb, None
    while entry is not None:
        if entry.tb_frame.f_globals.get("__name__") == __name__:
            last_runner = entry
        entry = entry.tb_next
    if last_runner is None:
        return tb  # not raised through the runner: keep everything
    # The runpy frames a module or a directory runs under stay, as python shows them.
    first = last_runner.tb_next
    _drop_sigint_handler_frames(first)
    return first


def _drop_sigint_handler_frames(tb: TracebackType | None) -> None:
    """Cut the PAL's SIGINT handler (a Python function, unlike the interpreter's
    default one) off the end of a KeyboardInterrupt's traceback, where the program's
    own frame is the last under ``python``."""
    entry, keep = tb, None
    while entry is not None:
        if entry.tb_frame.f_globals.get("__name__") != _SIGINT_HANDLER_MODULE:
            keep = entry  # the last frame that is not the handler's
        entry = entry.tb_next
    if keep is not None:
        keep.tb_next = None


_SIGINT_HANDLER_MODULE = "pylibos.pal._interrupts"


def cmd_run(argv: Sequence[str]) -> int:
    """``pylibos run``; returns an exit status, or lets the program's exit propagate."""
    try:
        options, target = parse(argv)
        if options.json is not None:
            options.json = json_target(options.json)
        if options.pal != "sgx" and options.max_threads != 1024:
            raise RunUsageError("--max-threads applies to --pal sgx only")
        if options.pal == "sgx" and options.max_threads < 2:
            raise RunUsageError("--max-threads must be at least 2 (the main thread and one)")
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    _set_path0(target)
    missing = _missing_target(target)
    if missing is not None:
        message, status = missing
        print(message, file=sys.stderr)
        return status

    host_options: dict[str, Any] = {}
    if options.pal == "sgx":
        host_options["max_threads"] = options.max_threads
    host = open_host(options.pal, **host_options)
    try:
        libos = LibOS(
            host,
            options.events or default_events(host),
            options.pool,
            profile_every=options.profile_every,
        )
    except BaseException:
        host.shutdown()
        raise
    try:
        hook = install(libos)
    except BaseException:
        libos.shutdown()
        host.shutdown()
        raise
    state = RunState(options, host, libos, hook, time.perf_counter())
    atexit.register(at_exit, state)
    threading._register_atexit(_native_ctrl_c)  # type: ignore[attr-defined]
    return _run_program(state, target)


def _native_ctrl_c() -> None:
    """Give Ctrl-C back to the interpreter's own handler once the program's main code is
    over and the interpreter waits for its non-daemon threads (``threading._shutdown``
    runs this before it joins them): a KeyboardInterrupt there is then reported as
    ``python`` reports it, with no frame of the PAL's handler.  What the main thread
    does in the LibOS from here on (an atexit handler's thread start, the shutdown at
    exit) is done as the process ends, which closes whatever a Ctrl-C there loses."""
    from ..pal import _interrupts

    _interrupts.uninstall()


def _run_program(state: RunState, target: Target) -> int:
    if target.script is not None:
        sys.argv[:] = [target.script, *target.args]
    else:
        sys.argv[:] = ["-m", *target.args]  # runpy puts the module's file in argv[0]
    state.argv = list(sys.argv)
    sys.excepthook = _TrimmedExcepthook(sys.excepthook)
    try:
        if target.script is None:
            assert target.module is not None
            _exec_module(target.module)
        elif os.path.isfile(target.script) and not _is_zip(target.script):
            _exec_script(target.script)
        else:
            _exec_module("__main__", alter_argv=False)  # from sys.path[0], as python does
    except SystemExit as exc:
        state.exit_code = _exit_status(exc.code)
        raise
    except KeyboardInterrupt:
        state.exit_code = -signal.SIGINT
        raise
    except BaseException:
        state.exit_code = 1
        raise
    return 0


def _has_main(path: str) -> bool:
    """A file is its own main; a directory or zip file needs a ``__main__`` inside."""
    names = ("__main__.py", "__main__.pyc")
    if os.path.isdir(path):
        return any(os.path.isfile(os.path.join(path, n)) for n in names)
    if _is_zip(path):
        import zipfile

        with zipfile.ZipFile(path) as z:
            return any(n in z.namelist() for n in names)
    return True


def _fresh_main() -> types.ModuleType:
    """A ``__main__`` module with the names the interpreter starts its own with, put in
    ``sys.modules`` (atexit handlers and daemon threads see it there)."""
    main = types.ModuleType("__main__")
    if sys.version_info < (3, 14):
        main.__annotations__ = {}  # set by the interpreter's start-up before 3.14
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main


def _exec_script(path: str) -> None:
    """Run a file as ``python path`` does: ``__file__`` and code filenames the path
    joined to the current directory as given (not normalised), ``sys.argv[0]`` as given;
    a compiled file (``.pyc``, or starting with the interpreter's magic number) run as
    compiled code."""
    import importlib.machinery
    import importlib.util
    import io

    full = os.path.join(os.getcwd(), path)
    with io.open_code(full) as f:
        data = f.read()
    main = _fresh_main()
    main.__file__ = full
    main.__cached__ = None  # type: ignore[attr-defined]
    magic = importlib.util.MAGIC_NUMBER
    if path.endswith(".pyc") or data[:2] == magic[:2]:
        main.__loader__ = importlib.machinery.SourcelessFileLoader("__main__", full)
        if data[:4] != magic:
            raise RuntimeError("Bad magic number in .pyc file")
        code = marshal.loads(data[16:])  # after the magic number, flags and source stamp
    else:
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", full)
        code = compile(data, full, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def _exec_module(name: str, alter_argv: bool = True) -> None:
    """Run a module as ``python -m name`` does (and a directory or zip file as
    ``__main__`` from ``sys.path[0]``): through ``runpy``'s own entry for ``-m``, in a
    fresh ``__main__``; its parent packages are imported there, after ``sys.argv`` is
    set and with the LibOS installed, and a module it cannot find is reported in its
    words."""
    _fresh_main()
    runpy._run_module_as_main(name, alter_argv=alter_argv)  # type: ignore[attr-defined]


def _is_zip(path: str) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


_C_LONG = 1 << (8 * struct.calcsize("l") - 1)


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for ``sys.exit(code)``: an integer is taken
    as a C ``long`` (one past its range exits as -1 would), of which the system keeps
    the low byte; ``None`` is 0 and anything else, printed, is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return (code if -_C_LONG <= code < _C_LONG else -1) & 0xFF
    return 1
