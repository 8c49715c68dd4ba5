"""``pylibos run``: an unmodified Python program under the LibOS, as ``gramine-sgx app``
runs an application unchanged.

The program runs in this interpreter with the LibOS's thread-start hook and epoll
installed (``pylibos.libos.install``), and sees what it sees under ``python``: the same
``sys.argv``, ``sys.path[0]``, ``__main__``, ``sys.excepthook``, standard streams and exit
status.  pylibos writes nothing to stdout.  The statistics are taken in an ``atexit``
handler registered first of all, so they come after the interpreter has waited for the
program's non-daemon threads and after every other ``atexit`` handler, as late as the
program's own work can reach.  An exception escaping the program goes on to the
interpreter, which reports it and sets the exit status as it does natively; on its way
the hook in place then is handed the traceback trimmed of the runner's frames (the
``runpy`` ones of ``-m`` or a directory stay, as ``python`` shows them).  What cannot be
hidden (the runner's frames below the program's, the PAL's frames, the LibOS's worker
threads) is listed in the README under "Running a program".
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._options import UsageError, nonnegative_integer, positive_integer
from ._program import (
    MISSING,
    _absolute,
    _exec_module,
    _exec_script,
    _exec_stdin,
    _exit_status,
    _has_main,
    _is_zip,
    _program_frames,
    _ReportOnce,
)

if TYPE_CHECKING:
    from ._run_stats import RunState

DEFAULT_OCALL_CYCLES = 10_000


class RunUsageError(UsageError):
    """A bad option of pylibos's own: ``ERROR: ...`` and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise RunUsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from ..libos import EVENT_KINDS, SAMPLE_EVERY
    from ..pal import HOST_KINDS

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
            if word.startswith("-m") or word == "-" or not word.startswith("-"):
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
    if program[0].startswith("-m"):
        # "-mname" is "-m name", as python's option parser takes it.
        if program[0] != "-m":
            program[:1] = ["-m", program[0][2:]]
        if len(program) < 2:
            raise RunUsageError("-m needs a module name: pylibos run -- -m module [args ...]")
        return options, Target(None, program[1], program[2:])
    if program[0].startswith("-") and program[0] != "-":
        # Another interpreter option (``-c``, ``-X``...): not a program pylibos runs.
        raise RunUsageError(
            f"python option {program[0]} is not supported: pylibos run takes a script, "
            "-m module or - (the program from standard input)"
        )
    return options, Target(program[0], None, program[1:])


def json_target(path: str) -> str:
    """The absolute path ``--json`` names, checked before the program runs: resolved
    against the directory pylibos was started in (the program may change it), and
    refused (``RunUsageError``) if empty, relative with no current directory, a
    directory, in a missing directory or in one that cannot be written."""
    if not path:
        raise RunUsageError("--json: the path is empty")
    try:
        full = _absolute(path)
    except OSError as exc:
        raise RunUsageError(
            f"--json {path}: a relative path, and the current directory is gone ({exc.strerror})"
        ) from None
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


def _is_program_directory(path: str) -> bool:
    """A directory or a zip file, run as ``__main__`` from ``sys.path[0]``; anything else
    (a regular file, ``/dev/stdin``, a pipe, a FIFO) is a script.  Only a regular file
    is read for a zip's signature: a pipe's data is the program's."""
    return os.path.isdir(path) or (os.path.isfile(path) and _is_zip(path))


def _launch_entry() -> str | None:
    """The entry python put in front of ``sys.path`` for pylibos itself, or None: none
    under ``sys.flags.safe_path`` (``-P``, ``PYTHONSAFEPATH``), nor with ``python -m``
    from a current directory that is gone; else the current directory (``-m``) or the
    directory of the command pylibos was started as."""
    if getattr(sys.flags, "safe_path", False) or not sys.path:
        return None
    if getattr(sys.modules.get("__main__"), "__spec__", None) is not None:
        return None  # ``python -m pylibos``: its ``__main__`` took the entry off already
    return sys.path[0]


def _program_entry(target: Target) -> str | None:
    """The entry python puts in front of ``sys.path`` for the program, or None: none
    under ``sys.flags.safe_path``; the current directory with ``-m`` (none if it is
    gone); ``''`` for ``-``; a directory or zip file itself (made absolute, not
    normalised); else the script's directory (one symlink read, then the path resolved
    if it can be, as python does)."""
    if getattr(sys.flags, "safe_path", False):
        return None
    if target.script is None:
        return _cwd_or_none()
    if target.script == "-":
        return ""
    if _is_program_directory(target.script):
        try:
            return _absolute(target.script)
        except OSError:
            return target.script
    return _script_directory(target.script)


def _cwd_or_none() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _script_directory(script: str) -> str:
    path = script
    try:
        link = os.readlink(path)
    except OSError:
        pass
    else:
        if link.startswith(os.sep):
            path = link
        elif os.sep in link:
            path = os.path.join(os.path.dirname(path), link)
    try:
        return os.path.dirname(os.path.realpath(path, strict=True))
    except OSError:
        return os.path.dirname(path)


def _missing_target(target: Target) -> tuple[str, int] | None:
    """What ``python`` says, and its exit status, for a script it cannot find (before
    the LibOS boots: no program code runs).  A module is looked for by ``runpy`` as the
    program runs, as under ``python -m``: its parent packages are the program's code."""
    if target.script is None or target.script == "-":
        return None
    if not os.path.exists(target.script):
        try:
            path = _absolute(target.script)
        except OSError:
            path = target.script
        return (
            f"{sys.executable}: can't open file {path!r}: [Errno 2] No such file or directory",
            2,
        )
    if not _has_main(target.script):
        return f"{sys.executable}: can't find '__main__' module in {_absolute(target.script)!r}", 1
    return None


class _ExitWork:
    """The runner's work at exit, registered with ``atexit`` as the first thing ``pylibos
    run`` does (before pylibos imports a module that registers its own, as ``logging``
    does): it runs last, after the program's handlers; nothing until a run is set up."""

    def __init__(self) -> None:
        self.work: Callable[[], None] | None = None

    def __call__(self) -> None:
        if self.work is not None:
            self.work()


def cmd_run(argv: Sequence[str]) -> int:
    """``pylibos run``; returns an exit status, or lets the program's exit propagate."""
    exit_work = _ExitWork()
    atexit.register(exit_work)
    # What python put in front of sys.path for pylibos (the current directory, with -m)
    # is taken off while pylibos imports what it needs: a module of the program's own
    # there (a rich.py) is not taken for a library.  The program's entry goes in later.
    if _launch_entry() is not None:
        del sys.path[0]
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
    # Everything pylibos needs is imported before sys.path[0] is the program's.
    from ..libos import LibOS, default_events, install
    from ..pal import open_host
    from ._run_stats import RunState, at_exit, prepare_output

    output = prepare_output(options)  # what the statistics need, taken now
    entry = _program_entry(target)
    if entry is not None:
        sys.path.insert(0, entry)
    missing = _missing_target(target)
    if missing is not None:
        output.close()
        message, status = missing
        print(message, file=sys.stderr)
        return status
    host_options: dict[str, Any] = {}
    if options.pal == "sgx":
        host_options["max_threads"] = options.max_threads
    try:
        host = open_host(options.pal, **host_options)
    except BaseException:
        output.close()
        raise
    try:
        libos = LibOS(
            host,
            options.events or default_events(host),
            options.pool,
            profile_every=options.profile_every,
        )
    except BaseException:
        host.shutdown()
        output.close()
        raise
    try:
        hook = install(libos)
    except BaseException:
        libos.shutdown()
        host.shutdown()
        output.close()
        raise
    state = RunState(options, host, libos, hook, time.perf_counter(), output=output)
    exit_work.work = lambda: at_exit(state)
    return _run_program(state, target)


def _native_ctrl_c() -> None:
    """Give Ctrl-C back to the interpreter's own handler once the program's main code is
    over, before the interpreter runs the exit hooks of ``threading`` (a library's, as
    ``concurrent.futures`` joins its workers there) and waits for the program's
    non-daemon threads: a KeyboardInterrupt there is then reported as ``python``
    reports it, with no frame of the PAL's handler.  What the main thread does in the
    LibOS from here on (an atexit handler's thread start, the shutdown at exit) is done
    as the process ends, which closes whatever a Ctrl-C there loses."""
    from ..pal import _interrupts

    _interrupts.uninstall()


def _run_program(state: RunState, target: Target) -> int:
    if target.script is not None:
        sys.argv[:] = [target.script, *target.args]
    else:
        sys.argv[:] = ["-m", *target.args]  # runpy puts the module's file in argv[0]
    state.argv = list(sys.argv)
    try:
        try:
            if target.script is None:
                assert target.module is not None
                _exec_module(target.module)
            elif target.script == "-":
                _exec_stdin()
            elif not _is_program_directory(target.script):
                _exec_script(target.script)
            else:
                _exec_module("__main__", alter_argv=False)  # from sys.path[0], as python does
        finally:
            _native_ctrl_c()
    except SystemExit as exc:
        state.exit_code = _exit_status(exc.code)
        raise
    except BaseException as exc:
        state.exit_code = -signal.SIGINT if isinstance(exc, KeyboardInterrupt) else 1
        hook = getattr(sys, "excepthook", MISSING)
        sys.excepthook = _ReportOnce(state, hook, exc, _program_frames(exc.__traceback__))
        raise
    return 0
